//! `jobmatch embed` gives the vectors Python's sentence-transformers gives for the same
//! model directory (fixture made by scripts/make-parity-fixture.py), whether texts are
//! embedded together or one at a time, for short, long and over-limit texts: cosine
//! ≥ 0.9999 in full precision (`f32`), ≥ 0.999 in `bf16` where the CPU has AVX-512 BF16.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use jobmatch_e2e::parity::{Reference, cosine, references};
use jobmatch_e2e::process::jobmatch_bin;

/// Runs `jobmatch embed` with the given stdin text.
async fn run_embed(input: String) -> std::process::Output {
    run_embed_in(input, "f32").await
}

async fn run_embed_in(input: String, precision: &str) -> std::process::Output {
    run_embed_with(input, precision, "auto").await
}

async fn run_embed_with(input: String, precision: &str, kernels: &str) -> std::process::Output {
    let mut child = tokio::process::Command::new(jobmatch_bin())
        .arg("embed")
        .env("JOBMATCH_EMBED_PRECISION", precision)
        .env("JOBMATCH_EMBED_KERNELS", kernels)
        .env(
            "JOBMATCH_MODEL_DIR",
            jobmatch_e2e::env_path("JOBMATCH_MODEL_DIR"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jobmatch embed");
    let mut stdin = child.stdin.take().expect("stdin");
    // Written from its own task: the child may fill stdout before reading all of stdin.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = child
        .wait_with_output()
        .await
        .expect("jobmatch embed output");
    writer.await.expect("stdin writer");
    output
}

/// Embeds the given stdin lines in full precision; returns vectors and stderr.
async fn embed(lines: &[String]) -> (Vec<Vec<f32>>, String) {
    embed_in(lines, "f32").await
}

async fn embed_in(lines: &[String], precision: &str) -> (Vec<Vec<f32>>, String) {
    let output = run_embed_in(lines.join("\n"), precision).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "jobmatch embed failed: {stderr}");
    let vectors = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON array per line"))
        .collect();
    (vectors, stderr)
}

fn assert_parity(refs: &[Reference], vectors: &[Vec<f32>], how: &str) {
    let lowest = assert_parity_within(refs, vectors, how, 0.9999);
    eprintln!("{how}: lowest cosine {lowest:.7}");
}

/// Asserts every vector within `min` cosine of its reference; returns the lowest cosine.
fn assert_parity_within(refs: &[Reference], vectors: &[Vec<f32>], how: &str, min: f64) -> f64 {
    assert_eq!(vectors.len(), refs.len(), "{how}: one vector per text");
    let mut lowest = 1.0f64;
    for (r, v) in refs.iter().zip(vectors) {
        assert_eq!(v.len(), r.vector.len(), "{how}: dimension");
        let c = cosine(&r.vector, v);
        lowest = lowest.min(c);
        assert!(
            c >= min,
            "{how}: cosine {c} for a {}-token text {:?}",
            r.tokens,
            r.text.chars().take(60).collect::<String>()
        );
    }
    lowest
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_vectors_match_sentence_transformers() {
    let refs = references();
    assert!(
        refs.iter().any(|r| r.tokens > 256),
        "the fixture includes texts over the 256-token limit"
    );
    assert!(
        refs.iter().any(|r| (100..=256).contains(&r.tokens)),
        "the fixture includes long texts within the limit"
    );
    // Both input forms: a JSON string, and {"text": ...}.
    let lines: Vec<String> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 2 == 0 {
                serde_json::json!(r.text).to_string()
            } else {
                serde_json::json!({"text": r.text}).to_string()
            }
        })
        .collect();
    let (vectors, stderr) = embed(&lines).await;
    assert_parity(&refs, &vectors, "batched");
    let over = refs.iter().filter(|r| r.tokens > 256).count();
    assert!(
        stderr.contains(&format!("{over} truncated at 256 tokens")),
        "truncations are reported: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn single_vectors_match_sentence_transformers() {
    let refs = references();
    let mut vectors = Vec::new();
    for r in &refs {
        let (mut v, _) = embed(&[serde_json::json!(r.text).to_string()]).await;
        vectors.push(v.pop().expect("one vector"));
    }
    assert_parity(&refs, &vectors, "one at a time");
}

/// candle's own ops (the path on a GPU or a CPU without AVX-512, padded batches) give
/// the same vectors as the AVX-512 kernels (packed batches) and sentence-transformers.
#[tokio::test(flavor = "multi_thread")]
async fn candle_ops_match_sentence_transformers_too() {
    let refs = references();
    let input = refs
        .iter()
        .map(|r| serde_json::json!(r.text).to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let output = run_embed_with(input, "f32", "candle").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "jobmatch embed failed: {stderr}");
    let vectors: Vec<Vec<f32>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON array per line"))
        .collect();
    assert_parity(&refs, &vectors, "candle ops, batched");
}

/// bf16 linear layers: within cosine 0.999 of sentence-transformers (the bar for a lower
/// precision), batched or not. Skipped, saying so, on a CPU without AVX-512 BF16.
#[tokio::test(flavor = "multi_thread")]
async fn bf16_vectors_stay_within_0_999() {
    let refs = references();
    let lines: Vec<String> = refs
        .iter()
        .map(|r| serde_json::json!(r.text).to_string())
        .collect();
    let probe = run_embed_in("\"probe\"".to_owned(), "bf16").await;
    let stderr = String::from_utf8_lossy(&probe.stderr);
    if !probe.status.success() {
        assert!(
            stderr.contains("lacks the AVX-512 BF16 instructions"),
            "bf16 refused for another reason: {stderr}"
        );
        eprintln!("skipped: {stderr}");
        return;
    }
    let (batched, _) = embed_in(&lines, "bf16").await;
    let lowest_batched = assert_parity_within(&refs, &batched, "bf16 batched", 0.999);
    let mut single = Vec::new();
    for line in &lines {
        let (mut v, _) = embed_in(std::slice::from_ref(line), "bf16").await;
        single.push(v.pop().expect("one vector"));
    }
    let lowest_single = assert_parity_within(&refs, &single, "bf16 one at a time", 0.999);
    eprintln!("bf16 lowest cosine: batched {lowest_batched:.6}, one at a time {lowest_single:.6}");
}

#[tokio::test(flavor = "multi_thread")]
async fn f16_on_cpu_is_refused_with_the_reason() {
    let output = run_embed_in("\"x\"".to_owned(), "f16").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("precision f16 is not available on CPU: f16 runs on GPU only"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_line_is_named() {
    let output = run_embed("\"fine\"\n{\"txt\": 1}\n".to_owned()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("line 2: expected {\"text\": \"...\"}"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_model_directory_is_named() {
    let output = tokio::process::Command::new(jobmatch_bin())
        .arg("embed")
        .env("JOBMATCH_MODEL_DIR", "/nonexistent/model")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("jobmatch embed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("/nonexistent/model: no config.json"),
        "{stderr}"
    );
}
