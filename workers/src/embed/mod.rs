//! Embedding: sentence-transformer models on candle, and the `embedder` role.

mod bert;
pub mod model;
pub mod role;

pub use model::{EmbedError, Embeddings, Precision, SentenceEmbedder};
