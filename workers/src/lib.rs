//! jobmatch's workers: one binary, `jobmatch`, whose roles are chosen on the command line
//! (`fetcher`, `embedder`, `matcher`, `notifier`, or `all` of them in one process).
//!
//! ```text
//! boards ─HTTP─► fetch ─► JOBS ─► embed ─► VECTORS ─► matcher (store) ─► MATCHES ─► notify ─► SMTP / Slack
//! ```

pub mod api;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dead_letters;
pub mod embed;
pub mod fetch;
pub mod http;
pub mod matcher;
pub mod metrics;
pub mod notify;
pub mod reports;
pub mod rpc;
pub mod runtime;
pub mod store;
pub mod tls;
