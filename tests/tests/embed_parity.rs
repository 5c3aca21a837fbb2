//! `jobmatch embed` gives the vectors Python's sentence-transformers gives for the same
//! model directory (fixture made by scripts/make-parity-fixture.py), whether texts are
//! embedded together or one at a time, including texts longer than the model's limit.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use jobmatch_e2e::fixture;
use jobmatch_e2e::process::jobmatch_bin;

struct Reference {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn references() -> Vec<Reference> {
    std::fs::read_to_string(fixture("parity/vectors.jsonl"))
        .expect("parity fixture")
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
            Reference {
                text: v["text"].as_str().expect("text").to_owned(),
                tokens: v["tokens"].as_u64().expect("tokens") as usize,
                vector: serde_json::from_value(v["vector"].clone()).expect("vector"),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Runs `jobmatch embed` with the given stdin text.
async fn run_embed(input: String) -> std::process::Output {
    let mut child = tokio::process::Command::new(jobmatch_bin())
        .arg("embed")
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

/// Embeds the given stdin lines; returns vectors and stderr.
async fn embed(lines: &[String]) -> (Vec<Vec<f32>>, String) {
    let output = run_embed(lines.join("\n")).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "jobmatch embed failed: {stderr}");
    let vectors = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON array per line"))
        .collect();
    (vectors, stderr)
}

fn assert_parity(refs: &[Reference], vectors: &[Vec<f32>], how: &str) {
    assert_eq!(vectors.len(), refs.len(), "{how}: one vector per text");
    for (r, v) in refs.iter().zip(vectors) {
        assert_eq!(v.len(), r.vector.len(), "{how}: dimension");
        let c = cosine(&r.vector, v);
        assert!(
            c >= 0.9999,
            "{how}: cosine {c} for a {}-token text {:?}",
            r.tokens,
            &r.text[..r.text.len().min(60)]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_vectors_match_sentence_transformers() {
    let refs = references();
    assert!(
        refs.iter().any(|r| r.tokens > 256),
        "the fixture includes texts over the 256-token limit"
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
