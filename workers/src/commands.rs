//! The one-shot commands: `embed`, `fetch`, `apply` and `report`.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jobmatch_core::messages::{self as m, MatchFound};

use crate::bus::Bus;
use crate::cli::{Connections, DeadLetterAction};
use crate::embed::SentenceEmbedder;
use crate::fetch::http::BoardClient;

/// Texts embedded per model call when reading stdin.
const EMBED_CHUNK: usize = 256;

/// One input line: a JSON string, or an object with a `text` field.
fn input_text(line: &str, number: usize) -> anyhow::Result<String> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(serde_json::Value::Object(o)) => match o.get("text") {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => anyhow::bail!("line {number}: expected {{\"text\": \"...\"}}"),
        },
        Ok(_) => anyhow::bail!("line {number}: expected a JSON string or {{\"text\": \"...\"}}"),
        Err(e) => anyhow::bail!("line {number}: not JSON: {e}"),
    }
}

pub fn embed(c: &Connections) -> anyhow::Result<()> {
    let model = SentenceEmbedder::load(
        &c.model_dir,
        c.embedding.precision,
        c.embedding.embed_kernels,
    )
    .map_err(|e| anyhow::anyhow!("{e} (model directory {})", c.model_dir.display()))?
    .with_limits(c.embedding.model_limits());
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut texts = Vec::new();
    let (mut count, mut truncated) = (0usize, 0usize);
    let started = Instant::now();
    let mut flush = |texts: &mut Vec<String>, out: &mut dyn Write| -> anyhow::Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        let embeddings = model.embed(texts)?;
        truncated += embeddings.truncated;
        count += texts.len();
        for vector in embeddings.vectors {
            serde_json::to_writer(&mut *out, &vector)?;
            out.write_all(b"\n")?;
        }
        texts.clear();
        eprint!("\rembedded {count} texts");
        Ok(())
    };
    for (i, line) in stdin.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        texts.push(input_text(&line, i + 1)?);
        if texts.len() == EMBED_CHUNK {
            flush(&mut texts, &mut out)?;
        }
    }
    flush(&mut texts, &mut out)?;
    out.flush()?;
    let secs = started.elapsed().as_secs_f64();
    let device = if model.device().is_cuda() {
        "GPU 0"
    } else {
        "CPU"
    };
    eprintln!(
        "\rembedded {count} texts in {secs:.2}s ({:.1} texts/s) on {device}, {}; {truncated} truncated at {} tokens",
        count as f64 / secs.max(1e-9),
        model.precision(),
        model.max_seq_len()
    );
    Ok(())
}

/// `jobmatch fetch -f`: polls each JobSource once, prints its normalized postings as
/// JSON lines on stdout, and a summary per source on stderr (new, updated, unchanged,
/// closed, duplicates, reposts, errors). Dedup runs across the sources of one call, so
/// a job listed by two of them shows as a duplicate. False when any source failed.
pub async fn fetch(c: &Connections, files: &[std::path::PathBuf]) -> anyhow::Result<bool> {
    use crate::fetch::publish::{DrySink, SharedIndex, apply};
    let loaded = crate::config::load_paths(files);
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    let client = BoardClient::with_politeness(c.http_timeout, c.politeness())?;
    let index = SharedIndex::default();
    let mut ok = loaded.errors.is_empty();
    let mut total = m::PollCounts::default();
    let mut out = std::io::stdout().lock();
    for source in &loaded.sources {
        eprintln!("{}: polling {} ...", source.name, source.spec.board.kind());
        let poll = match crate::fetch::poll(&client, source, None).await {
            Ok(poll) => poll,
            Err(e) => {
                ok = false;
                let status = e
                    .http_status()
                    .map(|s| format!(" (HTTP {s})"))
                    .unwrap_or_default();
                eprintln!("{}: error [{}]{status}: {e}", source.name, e.category());
                continue;
            }
        };
        for posting in &poll.postings {
            serde_json::to_writer(&mut out, posting)?;
            out.write_all(b"\n")?;
        }
        for s in &poll.skipped {
            eprintln!("{}: skipped {}: {}", source.name, s.location, s.message);
        }
        let counts = apply(&DrySink, &index, &source.name, &poll)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!(
            "{}: {} (HTTP {}, {} request{})",
            source.name,
            summary(&counts),
            poll.http_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            poll.requests,
            if poll.requests == 1 { "" } else { "s" }
        );
        total += counts;
    }
    out.flush()?;
    if loaded.sources.len() > 1 {
        eprintln!("total: {}", summary(&total));
    }
    Ok(ok)
}

/// `12 new, 0 updated, 3 unchanged, 0 closed, 1 duplicates, 0 reposts, 2 errors, 5 filtered out`.
fn summary(c: &m::PollCounts) -> String {
    format!(
        "{} new, {} updated, {} unchanged, {} closed, {} duplicates, {} reposts, {} errors, {} filtered out",
        c.new, c.updated, c.unchanged, c.closed, c.duplicates, c.reposts, c.malformed, c.filtered
    )
}

/// Counts read from JetStream: what each stage has produced and what waits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    postings: u64,
    vectors: u64,
    matches: u64,
    notices: u64,
    waiting: u64,
}

async fn progress(bus: &Bus) -> anyhow::Result<Progress> {
    // Each stream and the one durable consumer that reads it.
    let mut counts = [0u64; 3];
    let mut waiting = 0;
    for (count, spec) in counts.iter_mut().zip([
        m::EMBEDDER_CONSUMER,
        m::MATCHER_CONSUMER,
        m::NOTIFIER_CONSUMER,
    ]) {
        let consumer = spec.name;
        let mut s = bus.js.get_stream(spec.stream).await?;
        let state = s.info().await?.state.clone();
        // Notified matches leave MATCHES: count what was ever published there.
        *count = if spec.stream == m::MATCHES_STREAM {
            state.last_sequence
        } else {
            state.messages
        };
        // Absent until its role first starts.
        if let Ok(consumer) = s
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
            .await
        {
            let info = consumer.cached_info();
            waiting += info.num_pending + info.num_ack_pending as u64;
        }
    }
    let [postings, vectors, matches] = counts;
    let mut p = Progress {
        postings,
        vectors,
        matches,
        notices: 0,
        waiting,
    };
    p.notices = sent_notices(bus).await?.len() as u64;
    Ok(p)
}

/// Every sent notice, with the summary of its match where it has one.
async fn sent_notices(bus: &Bus) -> anyhow::Result<Vec<Option<m::NoticeSummary>>> {
    let mut sent = Vec::new();
    let mut keys = bus.notices.keys().await?;
    while let Some(key) = keys.next().await {
        let value = bus.notices.get(key?).await?;
        if let Some(m::NoticeState::Sent { summary, .. }) =
            value.as_deref().and_then(m::NoticeState::decode)
        {
            sent.push(summary);
        }
    }
    Ok(sent)
}

pub async fn report(c: &Connections, wait_idle: bool, timeout: Duration) -> anyhow::Result<()> {
    let bus = Bus::connect_to(&c.nats(), jobmatch_bus::Mode::KeepExisting).await?;
    if wait_idle {
        let started = Instant::now();
        let (mut last, mut stable_since) = (Progress::default(), Instant::now());
        loop {
            let p = progress(&bus).await?;
            eprint!(
                "\r[{:>4.0}s] postings {} · vectors {} · matches {} · notices sent {} · waiting {}   ",
                started.elapsed().as_secs_f64(),
                p.postings,
                p.vectors,
                p.matches,
                p.notices,
                p.waiting
            );
            if p != last {
                (last, stable_since) = (p, Instant::now());
            }
            let idle = p.postings > 0
                && p.waiting == 0
                && stable_since.elapsed() >= Duration::from_secs(5);
            if idle {
                eprintln!();
                break;
            }
            if started.elapsed() > timeout {
                eprintln!();
                anyhow::bail!("pipeline still busy after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let p = progress(&bus).await?;
    println!("postings published: {}", p.postings);
    println!("vectors: {}", p.vectors);
    println!("notices sent: {}", p.notices);
    println!("matches notified:");
    let mut notified: Vec<m::NoticeSummary> =
        sent_notices(&bus).await?.into_iter().flatten().collect();
    notified.sort_by(|a, b| {
        (&a.subscription, b.score)
            .partial_cmp(&(&b.subscription, a.score))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for n in &notified {
        let terms = if n.matched_terms.is_empty() {
            String::new()
        } else {
            format!(" · matched {}", n.matched_terms.join(", "))
        };
        println!(
            "  {:<12} {:.2}  {} at {} ({}){terms}",
            n.subscription,
            n.score,
            n.title,
            n.company,
            n.locations.join("; ")
        );
    }
    // Matches not notified yet (waiting, or retried) are still in MATCHES.
    let stream = bus.js.get_stream(m::MATCHES_STREAM).await?;
    let count = stream.get_info().await?.state.messages;
    if count > 0 {
        println!("matches waiting to be notified:");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await?;
        let mut messages = consumer.messages().await?.take(count as usize);
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(2), messages.next()).await
        {
            let Ok(found) = serde_json::from_slice::<MatchFound>(&message?.payload) else {
                continue;
            };
            if seen.insert(found.notice_key()) {
                println!(
                    "  {:<12} {:.2}  {} at {}",
                    found.subscription,
                    found.explanation.score,
                    found.posting.title,
                    found.posting.company
                );
            }
        }
    }
    Ok(())
}

/// `jobmatch dead-letters`: what each stage gave up on, sent back or purged.
pub async fn dead_letters(c: &Connections, action: &DeadLetterAction) -> anyhow::Result<()> {
    use crate::dead_letters;
    let bus = Bus::connect_to(&c.nats(), jobmatch_bus::Mode::KeepExisting).await?;
    let (selection, stage) = match action {
        DeadLetterAction::List { selection, .. }
        | DeadLetterAction::Redrive { selection }
        | DeadLetterAction::Purge { selection } => (selection, selection.stage.as_deref()),
    };
    if let Some(stage) = stage
        && !m::CONSUMERS.iter().any(|c| c.name == stage)
    {
        anyhow::bail!("--stage {stage}: not a stage (embedder, matcher, notifier)");
    }
    let mut letters = dead_letters::list(&bus, stage)
        .await
        .map_err(|e| anyhow::anyhow!("reading dead letters: {e}"))?;
    if !selection.sequence.is_empty() {
        letters.retain(|l| selection.sequence.contains(&l.sequence));
        let missing: Vec<_> = selection
            .sequence
            .iter()
            .filter(|s| !letters.iter().any(|l| l.sequence == **s))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!("no dead letter with sequence {missing:?}");
        }
    } else if !matches!(action, DeadLetterAction::List { .. }) && !selection.all {
        anyhow::bail!("name the dead letters (--sequence N, repeatable) or pass --all");
    }
    match action {
        DeadLetterAction::List { json, .. } => {
            for l in &letters {
                if *json {
                    println!("{}", serde_json::to_string(l)?);
                } else {
                    println!(
                        "{:>6}  {:<9} {:<24} {}  after {} deliveries: {}",
                        l.sequence, l.stage, l.subject, l.at, l.deliveries, l.reason
                    );
                }
            }
            if !*json {
                eprintln!("{} dead letters", letters.len());
            }
        }
        DeadLetterAction::Redrive { .. } => {
            let sent = dead_letters::redrive(&bus, &letters)
                .await
                .map_err(|e| anyhow::anyhow!("redriving: {e}"))?;
            println!("{sent} dead letters sent back to their stage");
        }
        DeadLetterAction::Purge { .. } => {
            let purged = dead_letters::purge(&bus, &letters)
                .await
                .map_err(|e| anyhow::anyhow!("purging: {e}"))?;
            println!("{purged} dead letters purged");
        }
    }
    Ok(())
}
