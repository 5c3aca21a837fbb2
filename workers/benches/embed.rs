//! Embedding throughput and memory, printed (`scripts/bench-embed.sh` runs this next to
//! Python's sentence-transformers on the same texts and threads):
//!
//! `cargo bench -p jobmatch-workers --bench embed -- TEXTS [MODEL_DIR]`
//!
//! Embeds every text of TEXTS (one JSON string per line) through the batching queue the
//! server uses, as requests of 32 texts all sent at once (after a warm-up request);
//! prints one JSON line with texts/s, tokens/s (real tokens, after truncation, specials
//! included) and the process's peak RSS. `JOBMATCH_EMBED_PRECISION` picks the precision
//! (`f32`, `bf16`, `f16` on a GPU), `JOBMATCH_EMBED_MAX_BATCH_TEXTS` and
//! `_TOKENS` the batch shape (a GPU wants far larger batches than the CPU defaults).

use std::path::PathBuf;
use std::time::Instant;

use std::sync::Arc;

use jobmatch_workers::embed::{Batcher, BatcherConfig, Kernels, Precision, SentenceEmbedder, Wait};
use jobmatch_workers::metrics::Metrics;

/// Texts per request.
const REQUEST: usize = 32;

/// As in the `jobmatch` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; positional arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let texts_path = args
        .first()
        .map(PathBuf::from)
        .ok_or_else(|| anyhow::anyhow!("usage: embed TEXTS [MODEL_DIR]"))?;
    let model_dir = args
        .get(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("JOBMATCH_MODEL_DIR").map(PathBuf::from))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/all-MiniLM-L6-v2")
        });
    let texts: Vec<String> = std::fs::read_to_string(&texts_path)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;

    let precision = match std::env::var("JOBMATCH_EMBED_PRECISION").as_deref() {
        Ok("f32") => Precision::F32,
        Ok("bf16") => Precision::Bf16,
        Ok("f16") => Precision::F16,
        _ => Precision::Auto,
    };
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let defaults = BatcherConfig::default();
    let max_batch_texts = setting("JOBMATCH_EMBED_MAX_BATCH_TEXTS", defaults.max_batch_texts);
    let max_batch_tokens = setting("JOBMATCH_EMBED_MAX_BATCH_TOKENS", defaults.max_batch_tokens);
    let kernels = match std::env::var("JOBMATCH_EMBED_KERNELS").as_deref() {
        Ok("candle") => Kernels::Candle,
        _ => Kernels::Auto,
    };
    let model = SentenceEmbedder::load(&model_dir, precision, kernels)?.with_limits(
        jobmatch_workers::embed::model::BatchLimits {
            max_texts: max_batch_texts,
            max_tokens: max_batch_tokens,
        },
    );
    let precision = model.precision();
    let device = if model.device().is_cuda() {
        "cuda:0"
    } else {
        "cpu"
    };
    let tokens = model.count_tokens(&texts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let batcher = Batcher::start(
        Arc::new(model),
        BatcherConfig {
            max_batch_texts,
            max_batch_tokens,
            max_queued_texts: texts.len().max(REQUEST),
        },
        Arc::new(Metrics::default()),
    )?;
    let (secs, truncated) = runtime.block_on(async {
        batcher
            .embed(texts[..texts.len().min(64)].to_vec(), Wait::Yes)
            .await?;
        let started = Instant::now();
        let requests = texts.chunks(REQUEST).map(|chunk| {
            let batcher = batcher.clone();
            let chunk = chunk.to_vec();
            tokio::spawn(async move { batcher.embed(chunk, Wait::Yes).await })
        });
        let mut truncated = 0;
        for request in futures::future::join_all(requests).await {
            let embedded = request??;
            assert_eq!(embedded.vectors.len(), embedded.vectors.len().min(REQUEST));
            truncated += embedded.truncated;
        }
        anyhow::Ok((started.elapsed().as_secs_f64(), truncated))
    })?;
    println!(
        "{}",
        serde_json::json!({
            "texts": texts.len(),
            "tokens": tokens,
            "truncated": truncated,
            "seconds": secs,
            "texts_per_s": texts.len() as f64 / secs,
            "tokens_per_s": tokens as f64 / secs,
            "peak_rss_mib": peak_rss_mib(),
            "threads": candle_core::utils::get_num_threads(),
            "precision": precision,
            "kernels": format!("{kernels:?}").to_lowercase(),
            "device": device,
            "max_batch_texts": max_batch_texts,
            "max_batch_tokens": max_batch_tokens,
        })
    );
    Ok(())
}
