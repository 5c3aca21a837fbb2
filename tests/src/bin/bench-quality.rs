//! Ranking quality on jobmatch's own labelled set (`jobmatch_e2e::quality`): for the
//! model in `JOBMATCH_MODEL_DIR` (or each directory given), nDCG@10, MAP and P@5 of
//! each ranking, over every resume and over those not written in English apart, and
//! what each `minScore` keeps of the set's relevant and unrelated pairs.
//!
//!     eval "$(scripts/setup.sh --env)"
//!     cargo run --release -p jobmatch-e2e --bin bench-quality [-- MODEL_DIR ...]

use std::path::PathBuf;

use jobmatch_e2e::quality::{self, Ranking};
use jobmatch_workers::embed::{Kernels, Precision, SentenceEmbedder};

fn main() -> anyhow::Result<()> {
    let mut dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs.push(jobmatch_e2e::env_path("JOBMATCH_MODEL_DIR"));
    }
    let (resumes, postings) = (quality::resumes(), quality::postings());
    println!(
        "bench-quality: {} resumes x {} postings, graded 0-3 by quality::grade",
        resumes.len(),
        postings.len()
    );
    for dir in dirs {
        let model = SentenceEmbedder::load(&dir, Precision::F32, Kernels::Auto)
            .map_err(|e| anyhow::anyhow!("{e} ({})", dir.display()))?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        println!("| model | ranking | resumes | nDCG@10 | MAP | P@5 |");
        println!("|---|---|---|---|---|---|");
        let texts: Vec<String> = postings
            .iter()
            .map(|p| p.posting.embedding_text())
            .collect();
        let posting_vectors = model.embed(&texts)?.vectors;
        let resume_texts: Vec<&str> = resumes.iter().map(|r| r.text).collect();
        let resume_vectors = model.embed(&resume_texts)?.vectors;
        let foreign: Vec<usize> = (0..resumes.len())
            .filter(|&i| resumes[i].language != "en")
            .collect();
        for ranking in [Ranking::Dense, Ranking::DenseAndCriteria] {
            for (which, picked) in [
                ("all", (0..resumes.len()).collect::<Vec<_>>()),
                ("non-English", foreign.clone()),
            ] {
                let (rs, rv): (Vec<_>, Vec<_>) = picked
                    .iter()
                    .map(|&i| (resumes[i].clone(), resume_vectors[i].clone()))
                    .unzip();
                let q = quality::measure(&rs, &postings, &rv, &posting_vectors, ranking);
                println!(
                    "| {name} | {ranking:?} | {which} | {:.3} | {:.3} | {:.3} |",
                    q.ndcg10, q.map, q.p5
                );
            }
        }
        println!();
        println!("| {name}: minScore | relevant pairs kept | unrelated pairs kept |");
        println!("|---|---|---|");
        let thresholds = [0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6];
        for (t, kept, noise) in quality::calibration(
            &resumes,
            &postings,
            &resume_vectors,
            &posting_vectors,
            &thresholds,
        ) {
            println!(
                "| {t:.2} | {:.0} % | {:.0} % |",
                kept * 100.0,
                noise * 100.0
            );
        }
        println!();
    }
    Ok(())
}
