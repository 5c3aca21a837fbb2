//! Notifying: one email or Slack message per (subscription, job), ever.
//!
//! Contract: reads the MATCHES stream. Before sending, a create-only key
//! `<subscription>.<job digest>` is written to the notices bucket; if it already exists
//! the notice was sent (or is being sent) and the match is acknowledged without sending,
//! so restarts and redeliveries never send twice. A send is retried with backoff; when
//! every attempt fails the claim is released, the match goes to the dead-letter stream
//! (`jobmatch.dead.<subscription>`) and is acknowledged.
//!
//! A crash between the SMTP server accepting a mail and the claim being marked `sent`
//! leaves the claim in place: the notice is then not sent again (at most once per pair).

pub mod delivery;
pub mod render;
pub mod role;

pub use delivery::{Delivery, DeliveryError, RetryPolicy};
