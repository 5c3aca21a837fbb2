//! Embedding throughput and memory, printed (`scripts/bench-embed.sh` runs this next to
//! Python's sentence-transformers on the same texts and threads):
//!
//! `cargo bench -p jobmatch-workers --bench embed -- TEXTS [MODEL_DIR]`
//!
//! Embeds every text of TEXTS (one JSON string per line) once to warm up on a slice,
//! then all of them timed; prints one JSON line with texts/s, tokens/s (real tokens,
//! after truncation, specials included) and the process's peak RSS.

use std::path::PathBuf;
use std::time::Instant;

use jobmatch_workers::embed::{Precision, SentenceEmbedder};

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
        _ => Precision::Auto,
    };
    let model = SentenceEmbedder::load(&model_dir, precision)?;
    let tokens = model.count_tokens(&texts)?;
    model.embed(&texts[..texts.len().min(64)])?;
    let started = Instant::now();
    let embeddings = model.embed(&texts)?;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(embeddings.vectors.len(), texts.len());
    println!(
        "{}",
        serde_json::json!({
            "texts": texts.len(),
            "tokens": tokens,
            "truncated": embeddings.truncated,
            "seconds": secs,
            "texts_per_s": texts.len() as f64 / secs,
            "tokens_per_s": tokens as f64 / secs,
            "peak_rss_mib": peak_rss_mib(),
            "threads": candle_core::utils::get_num_threads(),
            "precision": model.precision(),
        })
    );
    Ok(())
}
