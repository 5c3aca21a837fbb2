//! Matching: subscriptions against postings, in both directions.
//!
//! Contract: reads the VECTORS stream. A job vector is stored and then searched against
//! every subscription's resume vector; a subscription vector is stored and then searched
//! against the jobs already stored (backfill, best `topK`). Each pair that passes
//! [`criteria::evaluate`] is published to `jobmatch.matches.<subscription>` with its
//! explanation. Effects are idempotent (upserts; duplicate matches are absorbed by the
//! notifier's one-notice-per-pair key), so redelivery is safe.

pub mod criteria;
pub mod facts;
pub mod role;
pub mod service;
pub mod state;
