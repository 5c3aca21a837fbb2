//! Dynamic batching in front of the model, as in text-embeddings-inference.
//!
//! Contract: callers submit texts from any task; texts are tokenized by the caller (on a
//! blocking thread), queued, and taken by one backend OS thread in arrival order into
//! batches of at most `max_batch_texts` texts and `max_batch_tokens` tokens, which the
//! model sorts by length so that little is spent on padding. Texts queued or being
//! embedded are bounded by `max_queued_texts`: past it, [`Wait::No`] callers (HTTP) get
//! [`SubmitError::Busy`] at once and [`Wait::Yes`] callers (the NATS role) wait for room.
//! A caller that goes away before its batch is formed costs nothing: its texts are
//! dropped from the queue. Truncation at the model's limit is counted, never silent.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, oneshot};
use tracing::{debug, error};

use super::{Embeddings, SentenceEmbedder};
use crate::metrics::Metrics;

/// How batches are shaped and how much may wait.
#[derive(Debug, Clone, Copy)]
pub struct BatcherConfig {
    /// Most texts in one forward pass.
    pub max_batch_texts: usize,
    /// Most tokens in one batch (before padding).
    pub max_batch_tokens: usize,
    /// Most texts queued or being embedded at once.
    pub max_queued_texts: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        Self {
            max_batch_texts: 32,
            max_batch_tokens: 4096,
            max_queued_texts: 1024,
        }
    }
}

/// Whether a caller waits for room in the queue or is told the embedder is busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Yes,
    No,
}

/// What happens to a text longer than the model's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlong {
    /// Cut it at the limit (and count it).
    Truncate,
    /// Refuse the request.
    Refuse,
    /// Embed it whole, in pieces of the limit (the first up to [`MAX_PIECES`]), and
    /// combine them: the pieces' vectors averaged, each weighted by its tokens, then
    /// scaled to unit length. A cosine with the result is so the token-weighted mean of
    /// the cosines' numerators over the pieces: every part of a two-page resume counts.
    Chunk,
}

/// Most pieces one text is embedded in (`Overlong::Chunk`): about eight pages at 256
/// tokens a piece; the rest is cut and counted.
pub const MAX_PIECES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(
        "the embedder is busy: {queued} texts are queued or being embedded (at most {capacity}); retry shortly"
    )]
    Busy { queued: usize, capacity: usize },
    #[error("{count} texts in one request; the queue holds at most {capacity}")]
    TooMany { count: usize, capacity: usize },
    #[error("input {index} is longer than the model's limit of {limit} tokens")]
    TooLong { index: usize, limit: usize },
    #[error("tokenizing: {0}")]
    Tokenizer(String),
    #[error("embedding failed: {0}")]
    Model(String),
    #[error("the embedder has stopped")]
    Stopped,
}

/// One queued text.
struct Entry {
    ids: Vec<u32>,
    reply: oneshot::Sender<Result<Vec<f32>, String>>,
}

struct Shared {
    model: Arc<SentenceEmbedder>,
    config: BatcherConfig,
    metrics: Arc<Metrics>,
    queue: Mutex<VecDeque<Entry>>,
    wake: Condvar,
    /// One permit per text queued or being embedded.
    room: Arc<Semaphore>,
    stopped: AtomicBool,
}

/// Stops the backend thread when the last [`Batcher`] handle is dropped.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.room.close();
        self.0.wake.notify_all();
    }
}

/// A handle to the batching queue; clones share one queue and one backend thread.
#[derive(Clone)]
pub struct Batcher {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl Batcher {
    /// Starts the backend thread.
    pub fn start(
        model: Arc<SentenceEmbedder>,
        config: BatcherConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let config = BatcherConfig {
            max_batch_texts: config.max_batch_texts.max(1),
            max_batch_tokens: config.max_batch_tokens.max(1),
            max_queued_texts: config.max_queued_texts.max(1),
        };
        let shared = Arc::new(Shared {
            model,
            config,
            metrics,
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            room: Arc::new(Semaphore::new(config.max_queued_texts)),
            stopped: AtomicBool::new(false),
        });
        let backend = shared.clone();
        std::thread::Builder::new()
            .name("embed-backend".into())
            .spawn(move || backend_loop(&backend))?;
        Ok(Self {
            _stop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        })
    }

    pub fn model(&self) -> &SentenceEmbedder {
        &self.shared.model
    }

    pub fn config(&self) -> BatcherConfig {
        self.shared.config
    }

    /// Texts queued or being embedded now.
    pub fn in_flight(&self) -> usize {
        self.shared.config.max_queued_texts - self.shared.room.available_permits()
    }

    /// Embeds texts through the queue, cutting overlong ones; vectors come back in input
    /// order.
    pub async fn embed(&self, texts: Vec<String>, wait: Wait) -> Result<Embeddings, SubmitError> {
        self.embed_with(texts, wait, Overlong::Truncate).await
    }

    /// [`Batcher::embed`], choosing what happens to texts over the model's limit.
    pub async fn embed_with(
        &self,
        texts: Vec<String>,
        wait: Wait,
        overlong: Overlong,
    ) -> Result<Embeddings, SubmitError> {
        let shared = &self.shared;
        let count = texts.len();
        if count == 0 {
            return Ok(Embeddings::default());
        }
        let capacity = shared.config.max_queued_texts;
        if count > capacity {
            return Err(SubmitError::TooMany { count, capacity });
        }
        let permits = u32::try_from(count).map_err(|_| SubmitError::TooMany { count, capacity })?;
        // Held until the vectors are back (or this future is dropped).
        let _room = match wait {
            Wait::Yes => shared
                .room
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|_| SubmitError::Stopped)?,
            Wait::No => shared
                .room
                .clone()
                .try_acquire_many_owned(permits)
                .map_err(|e| match e {
                    tokio::sync::TryAcquireError::Closed => SubmitError::Stopped,
                    tokio::sync::TryAcquireError::NoPermits => {
                        shared.metrics.embed.overloaded.inc();
                        SubmitError::Busy {
                            queued: self.in_flight(),
                            capacity,
                        }
                    }
                })?,
        };

        let model = shared.model.clone();
        let tokenized = tokio::task::spawn_blocking(move || model.tokenize(&texts))
            .await
            .map_err(|e| SubmitError::Tokenizer(e.to_string()))?
            .map_err(|e| SubmitError::Tokenizer(e.to_string()))?;
        if overlong == Overlong::Refuse
            && let Some(index) = tokenized.iter().position(|t| t.truncated)
        {
            return Err(SubmitError::TooLong {
                index,
                limit: shared.model.max_seq_len(),
            });
        }
        let chunk = overlong == Overlong::Chunk;
        let truncated = tokenized
            .iter()
            .filter(|t| t.truncated && (!chunk || t.rest.len() >= MAX_PIECES))
            .count();
        // Each text's pieces: itself, and with `Chunk` what was cut off of it.
        let pieces: Vec<Vec<Vec<u32>>> = tokenized
            .into_iter()
            .map(|t| {
                let mut pieces = vec![t.ids];
                if chunk {
                    pieces.extend(t.rest.into_iter().take(MAX_PIECES - 1));
                }
                pieces
            })
            .collect();
        let tokens = pieces.iter().flatten().map(Vec::len).sum();
        if truncated > 0 {
            shared.metrics.truncations.inc_by(truncated as u64);
            debug!(
                truncated,
                of = count,
                "texts cut at the model's token limit"
            );
        }

        let mut replies = Vec::with_capacity(count);
        {
            let mut queue = shared
                .queue
                .lock()
                .map_err(|_| SubmitError::Model("the embedding queue is poisoned".into()))?;
            if shared.stopped.load(Ordering::SeqCst) {
                return Err(SubmitError::Stopped);
            }
            for text in &pieces {
                for ids in text {
                    let (reply, answer) = oneshot::channel();
                    queue.push_back(Entry {
                        ids: ids.clone(),
                        reply,
                    });
                    replies.push(answer);
                }
            }
            shared.metrics.embed.queue_depth.set(queue.len() as i64);
        }
        shared.wake.notify_one();

        let mut answers = replies.into_iter();
        let mut vectors = Vec::with_capacity(count);
        for text in &pieces {
            let mut embedded = Vec::with_capacity(text.len());
            for answer in answers.by_ref().take(text.len()) {
                match answer.await {
                    Ok(Ok(vector)) => embedded.push(vector),
                    Ok(Err(e)) => return Err(SubmitError::Model(e)),
                    Err(_) => return Err(SubmitError::Stopped),
                }
            }
            let vector = match embedded.len() {
                1 => embedded.pop().unwrap_or_default(),
                _ => combine(&embedded, text),
            };
            vectors.push(vector);
        }
        Ok(Embeddings {
            vectors,
            truncated,
            tokens,
        })
    }
}

/// The pieces' vectors as one: their mean weighted by each piece's tokens, at unit
/// length (see [`Overlong::Chunk`]).
pub fn combine(vectors: &[Vec<f32>], pieces: &[Vec<u32>]) -> Vec<f32> {
    let dimension = vectors.first().map_or(0, Vec::len);
    let mut sum = vec![0.0f32; dimension];
    for (vector, piece) in vectors.iter().zip(pieces) {
        let weight = piece.len() as f32;
        for (s, x) in sum.iter_mut().zip(vector) {
            *s += weight * x;
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        sum.iter_mut().for_each(|x| *x /= norm);
    }
    sum
}

/// Takes batches off the queue and embeds them, until the last handle is dropped.
fn backend_loop(shared: &Shared) {
    loop {
        let Some(batch) = next_batch(shared) else {
            return;
        };
        let tokens: usize = batch.iter().map(|e| e.ids.len()).sum();
        let ids: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
        let started = Instant::now();
        // A bug in the model must not take the backend thread (and every later request)
        // down with it: the batch fails, the thread goes on.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.model.embed_tokenized(&ids)
        }));
        let secs = started.elapsed().as_secs_f64();
        let m = &shared.metrics;
        match result {
            Ok(Ok(vectors)) => {
                m.embed.batch_texts.observe(batch.len() as f64);
                m.embed.batch_tokens.observe(tokens as f64);
                m.embed.batch_seconds.observe(secs);
                m.embed.tokens.inc_by(tokens as u64);
                m.texts_embedded.inc_by(batch.len() as u64);
                m.embed
                    .tokens_per_second
                    .set(tokens as f64 / secs.max(1e-9));
                for (entry, vector) in batch.into_iter().zip(vectors) {
                    // The caller may have gone; nothing to do then.
                    let _ = entry.reply.send(Ok(vector));
                }
            }
            Ok(Err(e)) => fail(batch, &e.to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                error!(error = %what, "the model panicked on a batch");
                fail(batch, &what);
            }
        }
    }
}

fn fail(batch: Vec<Entry>, why: &str) {
    error!(texts = batch.len(), error = %why, "embedding a batch failed");
    for entry in batch {
        let _ = entry.reply.send(Err(why.to_owned()));
    }
}

/// Waits for work, then takes texts in arrival order while they fit the batch limits
/// (always at least one). Texts whose caller has gone are dropped. `None` once stopped.
fn next_batch(shared: &Shared) -> Option<Vec<Entry>> {
    let mut queue = shared.queue.lock().ok()?;
    loop {
        queue.retain(|e| !e.reply.is_closed());
        if !queue.is_empty() {
            break;
        }
        shared.metrics.embed.queue_depth.set(0);
        if shared.stopped.load(Ordering::SeqCst) {
            return None;
        }
        queue = shared.wake.wait(queue).ok()?;
    }
    let limits = super::model::BatchLimits {
        max_texts: shared.config.max_batch_texts,
        max_tokens: shared.config.max_batch_tokens,
    };
    let take = limits.leading_fit(queue.iter().map(|e| e.ids.len()));
    let batch: Vec<Entry> = queue.drain(..take).collect();
    shared.metrics.embed.queue_depth.set(queue.len() as i64);
    Some(batch)
}
