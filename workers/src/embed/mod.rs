//! Embedding: sentence-transformer models on candle, and the `embedder` role.

pub mod batcher;
mod bert;
pub mod model;
pub mod role;
pub mod service;

pub use batcher::{Batcher, BatcherConfig, Overlong, SubmitError, Wait};
pub use model::{EmbedError, Embeddings, Kernels, Precision, SentenceEmbedder};
