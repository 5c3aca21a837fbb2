//! The embedding parity fixture: sentence-transformers' vectors for
//! `tests/fixtures/parity/texts.jsonl` (made by `scripts/make-parity-fixture.py`), and
//! the cosine to compare against them.

use crate::fixture;

/// One fixture text with sentence-transformers' vector for it.
pub struct Reference {
    pub text: String,
    /// Tokens before truncation.
    pub tokens: usize,
    pub vector: Vec<f32>,
}

pub fn references() -> Vec<Reference> {
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

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}
