//! Status as data: the `Ready` condition and the counts, computed from the outcome of a
//! reconcile, the workers' latest report and the previous status. Pure, so that the
//! reconcilers write only when the result differs from what is already there.

use crate::config_plane::Report;
use crate::crd::{Condition, JobSourceStatus, MatchSubscriptionStatus};

/// How a reconcile ended, as the `Ready` condition says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ready: bool,
    /// One CamelCase word.
    pub reason: &'static str,
    pub message: String,
}

impl Outcome {
    pub fn ready(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            ready: true,
            reason,
            message: message.into(),
        }
    }

    pub fn not_ready(reason: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            ready: false,
            reason,
            message: message.into(),
        }
    }
}

/// The `Ready` condition; its transition time moves only when its status does.
pub fn ready_condition(
    outcome: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: &str,
) -> Condition {
    let status = if outcome.ready { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(now.to_owned()));
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: outcome.reason.into(),
        message: outcome.message.clone(),
        last_transition_time,
        observed_generation: generation,
    }
}

pub fn source_status(
    outcome: &Outcome,
    generation: Option<i64>,
    report: Option<&Report>,
    previous: Option<&JobSourceStatus>,
    now: &str,
) -> JobSourceStatus {
    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let report = report.cloned().unwrap_or_default();
    JobSourceStatus {
        conditions: vec![ready_condition(
            outcome,
            generation,
            previous_conditions,
            now,
        )],
        observed_generation: generation,
        postings_seen: report.postings_seen,
        last_poll: report.last_poll,
        last_success: report.last_success,
        last_error: report.last_error,
        last_http_status: report.last_http_status,
        last_counts: report.last_counts,
        malformed_total: report.malformed_total,
    }
}

pub fn subscription_status(
    outcome: &Outcome,
    generation: Option<i64>,
    report: Option<&Report>,
    previous: Option<&MatchSubscriptionStatus>,
    now: &str,
) -> MatchSubscriptionStatus {
    let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let report = report.cloned().unwrap_or_default();
    MatchSubscriptionStatus {
        conditions: vec![ready_condition(
            outcome,
            generation,
            previous_conditions,
            now,
        )],
        observed_generation: generation,
        matches: report.matches,
        notices_sent: report.notices_sent,
        notices_failed: report.notices_failed,
        last_error: report.last_error,
    }
}

/// Whether the Ready condition changed in a way worth an Event: any change of status or
/// reason, except a new resource becoming ready, which its status already says (at ten
/// thousand resources, those Events would be a third of the operator's writes).
pub fn transition(previous: &[Condition], next: &Condition) -> bool {
    let before = previous.iter().find(|c| c.type_ == next.type_);
    match before {
        None => next.status != "True",
        Some(c) => c.status != next.status || c.reason != next.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_outcome_gives_an_identical_status() {
        let ok = Outcome::ready("Configured", "polled by the fetchers");
        let first = source_status(&ok, Some(1), None, None, "2026-01-01T00:00:00Z");
        let second = source_status(&ok, Some(1), None, Some(&first), "2026-01-01T00:05:00Z");
        assert_eq!(
            first, second,
            "a later reconcile must not rewrite the status"
        );
        assert!(!transition(&first.conditions, &second.conditions[0]));
    }

    #[test]
    fn transition_time_moves_with_the_status() {
        let ok = Outcome::ready("Configured", "");
        let bad = Outcome::not_ready("InvalidSpec", "spec.interval: must be at least 1s");
        let first = source_status(&ok, Some(1), None, None, "t1");
        let second = source_status(&bad, Some(2), None, Some(&first), "t2");
        let c = &second.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(c.last_transition_time.as_deref(), Some("t2"));
        assert_eq!(second.observed_generation, Some(2));
        assert!(transition(&first.conditions, c));
    }

    #[test]
    fn reports_become_counts() {
        let report = Report {
            matches: Some(4),
            notices_sent: Some(3),
            notices_failed: Some(1),
            last_error: Some("slack: 400".into()),
            ..Default::default()
        };
        let s = subscription_status(
            &Outcome::ready("Configured", ""),
            Some(1),
            Some(&report),
            None,
            "t",
        );
        assert_eq!(
            (s.matches, s.notices_sent, s.notices_failed),
            (Some(4), Some(3), Some(1))
        );
        assert_eq!(s.last_error.as_deref(), Some("slack: 400"));
    }

    #[test]
    fn source_reports_carry_counts_http_status_and_the_named_error() {
        let counts = jobmatch_core::messages::PollCounts {
            new: 3,
            unchanged: 12,
            closed: 1,
            duplicates: 2,
            malformed: 1,
            ..Default::default()
        };
        let report = Report {
            postings_seen: Some(18),
            last_http_status: Some(200),
            last_counts: Some(counts),
            malformed_total: Some(4),
            last_error: Some("GET http://x/jobs: HTTP 429, retry after 120s".into()),
            ..Default::default()
        };
        let s = source_status(
            &Outcome::ready("Configured", ""),
            Some(2),
            Some(&report),
            None,
            "t",
        );
        assert_eq!(
            (s.postings_seen, s.last_http_status, s.malformed_total),
            (Some(18), Some(200), Some(4))
        );
        assert_eq!(s.last_counts, Some(counts));
        assert_eq!(
            s.last_error.as_deref(),
            Some("GET http://x/jobs: HTTP 429, retry after 120s")
        );
        let json = serde_json::to_value(&s).expect("status serializes");
        assert_eq!(json["lastCounts"]["duplicates"], 2);
        assert_eq!(json["lastHttpStatus"], 200);
    }
}
