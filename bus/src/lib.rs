//! jobmatch's messaging layout on NATS JetStream, in one place: every stream, key-value
//! bucket and durable consumer, with the limits that bound them. The workers and the
//! operator both call [`ensure`] when they connect, so whichever starts first creates the
//! layout and neither can drift from the other.
//!
//! Names, subjects and message ids are the shared vocabulary in
//! `jobmatch_core::messages`; this crate turns them into JetStream configuration
//! ([`layout`], pure and unit-tested) and applies it ([`setup`]).

pub mod layout;
pub mod limits;
pub mod setup;

pub use limits::{BusLimits, LimitsError};
pub use setup::{Buckets, Mode, SetupError, ensure};
