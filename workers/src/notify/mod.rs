//! Notifying: one email or Slack message per (subscription, job), ever.
//!
//! Contract: reads the MATCHES stream. Before sending, the notice key
//! `<subscription>.<job digest>` is claimed in the notices bucket: created, or taken over
//! when the claim there has lapsed (a notifier died mid-send). A live claim of another
//! notifier, or `sent`, means the match is acknowledged without sending. After the mail
//! server or Slack accepts, the key becomes `sent` in one round trip. A failed attempt
//! releases the claim and is redelivered with a growing delay; after the consumer's
//! attempts (or at once, for a permanent error) the match goes to DEAD_LETTERS
//! (`jobmatch.dead.notifier.<subscription>`) and is counted on the subscription.
//!
//! The one window for a repeat: a crash after the server accepted a notice and before
//! `sent` was written. The repeat carries the same `Message-ID` (email) or
//! `X-Jobmatch-Notice-Id` (Slack), derived from the notice key.

pub mod delivery;
pub mod render;
pub mod role;
pub mod smtp;

pub use delivery::{Delivery, DeliveryError};
