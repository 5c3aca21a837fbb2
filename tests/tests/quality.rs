//! Ranking quality on jobmatch's own labelled set with the real model: it must not
//! fall below what it measured when the set was written (the README's table, from
//! `bench-quality`), for cosine alone and with the criteria.

use jobmatch_e2e::env_path;
use jobmatch_e2e::quality::{self, Quality, Ranking};
use jobmatch_workers::embed::{Kernels, Precision, SentenceEmbedder};

/// all-MiniLM-L6-v2 on the set, f32 (measured: cosine alone nDCG@10 0.774, MAP 0.827,
/// P@5 0.447; with the criteria 0.920, 0.933, 0.541), less a margin for other kernels.
const FLOORS: [(Ranking, Quality); 2] = [
    (
        Ranking::Dense,
        Quality {
            ndcg10: 0.76,
            map: 0.81,
            p5: 0.43,
        },
    ),
    (
        Ranking::DenseAndCriteria,
        Quality {
            ndcg10: 0.90,
            map: 0.92,
            p5: 0.52,
        },
    ),
];

#[test]
fn ranking_quality_does_not_fall() {
    let model = SentenceEmbedder::load(
        &env_path("JOBMATCH_MODEL_DIR"),
        Precision::F32,
        Kernels::Auto,
    )
    .expect("model");
    let (resumes, postings) = (quality::resumes(), quality::postings());
    let texts: Vec<String> = postings
        .iter()
        .map(|p| p.posting.embedding_text())
        .collect();
    let posting_vectors = model.embed(&texts).expect("postings").vectors;
    let resume_texts: Vec<&str> = resumes.iter().map(|r| r.text).collect();
    let resume_vectors = model.embed(&resume_texts).expect("resumes").vectors;
    let mut measured = Vec::new();
    for (ranking, floor) in FLOORS {
        let q = quality::measure(
            &resumes,
            &postings,
            &resume_vectors,
            &posting_vectors,
            ranking,
        );
        eprintln!(
            "{ranking:?}: nDCG@10 {:.3}, MAP {:.3}, P@5 {:.3}",
            q.ndcg10, q.map, q.p5
        );
        assert!(
            q.ndcg10 >= floor.ndcg10 && q.map >= floor.map && q.p5 >= floor.p5,
            "{ranking:?} fell: {q:?} below {floor:?}"
        );
        measured.push(q);
    }
    assert!(
        measured[1].ndcg10 > measured[0].ndcg10,
        "the criteria rank better than cosine alone: {measured:?}"
    );
}
