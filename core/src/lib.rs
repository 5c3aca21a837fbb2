//! jobmatch's shared vocabulary: the domain types (postings, sources, subscriptions,
//! criteria, matches) and the messages the workers exchange over NATS.
//!
//! A field means the same thing in a custom resource, a message and an API body, so the
//! spec types here are what the YAML documents (and, later, the CRDs) deserialize into.
//! This crate depends on neither Kubernetes nor NATS nor candle.

pub mod ids;
pub mod languages;
pub mod messages;
pub mod places;
pub mod posting;
pub mod role;
pub mod rpc;
pub mod source;
pub mod subscription;
pub mod validate;

pub use posting::{Posting, Salary, Workplace};
pub use role::Role;
pub use source::{Board, JobSourceSpec};
pub use subscription::{
    Channel, Criteria, EmploymentType, MatchSubscriptionSpec, RemotePolicy, SalaryFloor,
    SalaryPeriod, Schedule, Seniority,
};

/// The API group and version of jobmatch's resources (`apiVersion` in YAML documents).
pub const API_VERSION: &str = "jobmatch.dev/v1alpha1";

/// The current time in RFC 3339 at whole seconds (`2026-11-25T10:00:00Z`), as status and
/// reports write it.
pub fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
