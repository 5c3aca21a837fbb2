//! The embedder's CPU hot loops, in their own crate so that they are optimized even in
//! dev builds (the tests embed with the real model) without optimizing all of `workers`.
//!
//! - [`bf16_linear`]: linear layers in bf16 with AVX-512 BF16, weights packed once;
//! - [`attention`]: attention over each sequence's real tokens, AVX-512F;
//! - [`fastmath`]: vectorizable `exp`, `erf`, GELU and softmax;
//! - [`dot`]: a query against every row of a matrix (the embedded store's search).
//!
//! Each kernel says where it runs (`supported`); callers fall back to candle elsewhere.

pub mod attention;
pub mod bf16_linear;
pub mod dot;
pub mod fastmath;
