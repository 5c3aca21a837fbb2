//! Long resumes are read whole (the real model, in process): a text over the model's
//! 256 tokens is embedded in pieces, each with its special tokens, and its vector is the
//! token-weighted mean of theirs; a posting that fits only a resume's second page finds
//! it, which a resume cut at the limit never would.

use std::sync::Arc;

use jobmatch_e2e::env_path;
use jobmatch_e2e::parity::cosine;
use jobmatch_workers::embed::batcher::combine;
use jobmatch_workers::embed::{
    Batcher, BatcherConfig, Kernels, Overlong, Precision, SentenceEmbedder, Wait,
};
use jobmatch_workers::metrics::Metrics;

fn model() -> Arc<SentenceEmbedder> {
    let dir = env_path("JOBMATCH_MODEL_DIR");
    Arc::new(SentenceEmbedder::load(&dir, Precision::F32, Kernels::Auto).expect("model"))
}

/// A first page about one trade, a second about another.
fn two_page_resume() -> String {
    let pastry = "Pastry chef with ten years in French bakeries: croissants, laminated \
        doughs, sourdough bread, wedding cakes, chocolate work and running a busy morning \
        kitchen. ";
    let rust = "Since then, backend engineer: Rust services with Tokio, gRPC APIs, \
        PostgreSQL, NATS messaging, Kubernetes operators and Prometheus monitoring. ";
    format!("{}{}", pastry.repeat(8), rust.repeat(6))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_resume_is_embedded_whole_in_pieces() {
    let model = model();
    let resume = two_page_resume();
    let tokenized = model.tokenize(&[resume.as_str()]).expect("tokens");
    let first = &tokenized[0];
    assert!(
        first.truncated && first.rest.len() >= 2,
        "{} pieces",
        first.rest.len()
    );
    let pieces: Vec<Vec<u32>> = std::iter::once(first.ids.clone())
        .chain(first.rest.iter().cloned())
        .collect();
    let (cls, sep) = (first.ids[0], *first.ids.last().expect("ids"));
    for piece in &pieces {
        assert!(piece.len() <= model.max_seq_len(), "{}", piece.len());
        assert_eq!(
            (piece[0], piece[piece.len() - 1]),
            (cls, sep),
            "each piece is a whole input"
        );
    }

    let batcher = Batcher::start(
        model.clone(),
        BatcherConfig::default(),
        Arc::new(Metrics::default()),
    )
    .expect("batcher");
    let whole = batcher
        .embed_with(vec![resume.clone()], Wait::Yes, Overlong::Chunk)
        .await
        .expect("embed");
    assert_eq!(whole.truncated, 0, "nothing cut");
    // The pieces' vectors, each embedded alone, weighted by their tokens.
    let ids: Vec<&[u32]> = pieces.iter().map(Vec::as_slice).collect();
    let alone = model.embed_tokenized(&ids).expect("pieces");
    let expected = combine(&alone, &pieces);
    assert!(cosine(&whole.vectors[0], &expected) > 0.99999);

    let cut = batcher
        .embed_with(vec![resume.clone()], Wait::Yes, Overlong::Truncate)
        .await
        .expect("embed");
    assert_eq!(cut.truncated, 1);
    let posting = batcher
        .embed(
            vec![
                "Senior Rust Engineer: build backend services with Tokio and gRPC, \
                  run them on Kubernetes with Prometheus."
                    .to_owned(),
            ],
            Wait::Yes,
        )
        .await
        .expect("embed");
    let (read_whole, read_cut) = (
        cosine(&whole.vectors[0], &posting.vectors[0]),
        cosine(&cut.vectors[0], &posting.vectors[0]),
    );
    eprintln!(
        "{} pieces; the Rust job vs the whole resume {read_whole:.3}, vs its first 256 tokens {read_cut:.3}",
        pieces.len()
    );
    assert!(
        read_whole > read_cut + 0.1,
        "the Rust job against the whole resume {read_whole:.3}, against its first page {read_cut:.3}"
    );

    // A text within the limit is one piece: the same vector either way.
    let short = "Backend engineer, six years of Rust.".to_owned();
    let (a, b) = (
        batcher
            .embed_with(vec![short.clone()], Wait::Yes, Overlong::Chunk)
            .await
            .expect("embed"),
        batcher
            .embed_with(vec![short], Wait::Yes, Overlong::Truncate)
            .await
            .expect("embed"),
    );
    assert_eq!(a.vectors, b.vectors);
}
