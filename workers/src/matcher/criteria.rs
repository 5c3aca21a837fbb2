//! Whether a posting matches a subscription, and why: pure functions.
//!
//! [`evaluate`] is the single source of truth. Its remote and location rules are also
//! vector-store filters, both ways: [`prefilter`] (a subscription's criteria over job
//! points: a backfill skips the jobs that cannot match) and [`accepting_subscriptions`]
//! (a job over subscription points, stored with [`subscription_payload`]: a new job's
//! search skips the subscriptions that would refuse it). Neither ever rejects what
//! `evaluate` accepts (tested below).

use jobmatch_core::messages::Explanation;
use jobmatch_core::{Criteria, Posting, RemotePolicy, Workplace};
use serde_json::{Map, Value, json};

use crate::store::{Condition, Filter};

/// Payload fields of a job point.
pub const WORKPLACE_FIELD: &str = "workplace";
pub const LOCATION_FIELD: &str = "location_keys";
pub const POSTING_FIELD: &str = "posting";
/// The keyword fields of job points the store filters on (indexed).
pub const JOB_FILTER_FIELDS: [&str; 2] = [WORKPLACE_FIELD, LOCATION_FIELD];

/// Payload fields of a subscription point, its hard criteria as keywords: the remote
/// policy, whether it names places (`listed`) or takes any (`anywhere`), and the places.
pub const REMOTE_POLICY_FIELD: &str = "remote";
pub const PLACES_RULE_FIELD: &str = "places";
pub const WANTED_LOCATIONS_FIELD: &str = "wanted_locations";
/// The keyword fields of subscription points the store filters on (indexed).
pub const SUBSCRIPTION_FILTER_FIELDS: [&str; 3] = [
    REMOTE_POLICY_FIELD,
    PLACES_RULE_FIELD,
    WANTED_LOCATIONS_FIELD,
];

/// Why a posting is not a match.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    NotRemote,
    Remote,
    Location,
    MissingTerm(String),
    ForbiddenTerm(String),
    Score(f32),
}

/// The lower-cased names a location can be matched by: the whole string and its parts
/// (`"Berlin, Germany"` → `berlin, germany`, `berlin`, `germany`).
pub fn location_keys(locations: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for location in locations {
        let lower = location.trim().to_lowercase();
        let parts = lower
            .split([',', ';', '/', '|', '(', ')'])
            .flat_map(|part| part.split(" - "))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        for key in std::iter::once(lower.clone()).chain(parts) {
            if !key.is_empty() && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

fn workplace_name(w: Workplace) -> &'static str {
    match w {
        Workplace::Remote => "remote",
        Workplace::Hybrid => "hybrid",
        Workplace::Onsite => "onsite",
        Workplace::Unknown => "unknown",
    }
}

/// The payload stored with a job's vector.
pub fn job_payload(posting: &Posting) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert(
        WORKPLACE_FIELD.into(),
        json!(workplace_name(posting.workplace)),
    );
    payload.insert(
        LOCATION_FIELD.into(),
        json!(location_keys(&posting.locations)),
    );
    payload.insert(POSTING_FIELD.into(), json!(posting));
    payload
}

fn policy_name(policy: RemotePolicy) -> &'static str {
    match policy {
        RemotePolicy::Required => "required",
        RemotePolicy::Allowed => "allowed",
        RemotePolicy::Excluded => "excluded",
    }
}

/// The filter fields stored with a subscription's vector (beside its profile).
pub fn subscription_payload(criteria: &Criteria) -> Map<String, Value> {
    let wanted = wanted_locations(criteria);
    let mut payload = Map::new();
    payload.insert(
        REMOTE_POLICY_FIELD.into(),
        json!(policy_name(criteria.remote)),
    );
    payload.insert(
        PLACES_RULE_FIELD.into(),
        json!(if wanted.is_empty() {
            "anywhere"
        } else {
            "listed"
        }),
    );
    payload.insert(WANTED_LOCATIONS_FIELD.into(), json!(wanted));
    payload
}

/// The subscriptions whose remote and location rules accept `posting`, as a store
/// filter over points stored with [`subscription_payload`]. Only `must_not` conditions,
/// so a point stored before these fields existed is never filtered out (`evaluate`
/// still decides it).
pub fn accepting_subscriptions(posting: &Posting) -> Filter {
    let policy = |p| Condition::keyword(REMOTE_POLICY_FIELD, policy_name(p));
    if posting.workplace == Workplace::Remote {
        return Filter {
            must_not: vec![policy(RemotePolicy::Excluded)],
            ..Default::default()
        };
    }
    // Listing places, none of them this posting's.
    let elsewhere = Filter {
        must: vec![Condition::keyword(PLACES_RULE_FIELD, "listed")],
        must_not: vec![Condition::AnyKeyword {
            key: WANTED_LOCATIONS_FIELD.into(),
            values: location_keys(&posting.locations),
        }],
        ..Default::default()
    };
    Filter {
        must_not: vec![policy(RemotePolicy::Required), Condition::Nested(elsewhere)],
        ..Default::default()
    }
}

fn wanted_locations(criteria: &Criteria) -> Vec<String> {
    criteria
        .locations
        .iter()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The remote and location rules of `criteria` as a store filter.
pub fn prefilter(criteria: &Criteria) -> Filter {
    let remote = Condition::keyword(WORKPLACE_FIELD, "remote");
    let wanted = wanted_locations(criteria);
    let in_location = (!wanted.is_empty()).then(|| Condition::AnyKeyword {
        key: LOCATION_FIELD.into(),
        values: wanted,
    });
    match (criteria.remote, in_location) {
        (RemotePolicy::Required, _) => Filter {
            must: vec![remote],
            ..Default::default()
        },
        (RemotePolicy::Allowed, None) => Filter::default(),
        (RemotePolicy::Allowed, Some(place)) => Filter {
            should: vec![remote, place],
            ..Default::default()
        },
        (RemotePolicy::Excluded, place) => Filter {
            must: place.into_iter().collect(),
            must_not: vec![remote],
            ..Default::default()
        },
    }
}

/// Whether `term` occurs in `text` as a whole word or phrase: `go` is not in `good`,
/// `php` is not in `phpunit`, `c++` and `node.js` are found as written.
pub fn contains_term(text: &str, term: &str) -> bool {
    let term = term.trim().to_lowercase();
    if term.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric();
    text.match_indices(&term).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + term.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// A posting's text as term criteria read it (lower-cased), made on first use and then
/// shared: a job checked against hundreds of subscriptions lower-cases its text once,
/// and not at all when none of them has a term rule.
pub struct PostingText<'a> {
    posting: &'a Posting,
    text: std::cell::OnceCell<String>,
}

impl<'a> PostingText<'a> {
    pub fn new(posting: &'a Posting) -> Self {
        Self {
            posting,
            text: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &str {
        self.text.get_or_init(|| self.posting.searchable_text())
    }
}

/// Decides a posting against a subscription's criteria, given the cosine score of
/// resume and posting.
pub fn evaluate(
    criteria: &Criteria,
    posting: &Posting,
    score: f32,
) -> Result<Explanation, Rejection> {
    evaluate_text(criteria, &PostingText::new(posting), score)
}

/// [`evaluate`], the posting's text shared across calls.
pub fn evaluate_text(
    criteria: &Criteria,
    text: &PostingText,
    score: f32,
) -> Result<Explanation, Rejection> {
    let posting = text.posting;
    let mut filters = Vec::new();
    let remote = posting.workplace == Workplace::Remote;
    let wanted = wanted_locations(criteria);
    let keys = location_keys(&posting.locations);
    let place = wanted.iter().find(|w| keys.contains(w));
    match criteria.remote {
        RemotePolicy::Required if !remote => return Err(Rejection::NotRemote),
        RemotePolicy::Required => filters.push("remote: required (posting is remote)".to_owned()),
        RemotePolicy::Excluded if remote => return Err(Rejection::Remote),
        RemotePolicy::Allowed if remote => {
            filters.push("remote: allowed (posting is remote)".to_owned())
        }
        RemotePolicy::Allowed | RemotePolicy::Excluded => {
            if wanted.is_empty() {
                filters.push(format!("workplace: {}", workplace_name(posting.workplace)));
            } else if let Some(place) = place {
                filters.push(format!("location: {place}"));
            } else {
                return Err(Rejection::Location);
            }
        }
    }

    let mut matched_terms = Vec::new();
    for term in &criteria.must_have {
        if !contains_term(text.get(), term) {
            return Err(Rejection::MissingTerm(term.clone()));
        }
        matched_terms.push(term.clone());
    }
    if let Some(term) = criteria
        .must_not_have
        .iter()
        .find(|t| contains_term(text.get(), t))
    {
        return Err(Rejection::ForbiddenTerm(term.clone()));
    }
    if !criteria.must_not_have.is_empty() {
        filters.push(format!(
            "mustNotHave: none of {}",
            criteria.must_not_have.join(", ")
        ));
    }
    if score < criteria.min_score {
        return Err(Rejection::Score(score));
    }
    let (found, missing): (Vec<String>, Vec<String>) = criteria
        .preferred
        .iter()
        .cloned()
        .partition(|t| contains_term(text.get(), t));
    matched_terms.extend(found);
    Ok(Explanation {
        score,
        min_score: criteria.min_score,
        matched_terms,
        missing_terms: missing,
        filters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(workplace: Workplace, locations: &[&str], description: &str) -> Posting {
        Posting {
            id: "greenhouse:acme:1".into(),
            source: "acme".into(),
            title: "Backend Engineer".into(),
            company: "Acme".into(),
            locations: locations.iter().map(|s| s.to_string()).collect(),
            workplace,
            url: "https://example.com".into(),
            description: description.into(),
            tags: vec![],
            employment_type: None,
            salary: None,
            posted_at: None,
            updated_at: None,
            ..Default::default()
        }
    }

    fn criteria(remote: RemotePolicy, locations: &[&str]) -> Criteria {
        Criteria {
            remote,
            locations: locations.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn location_keys_split_parts() {
        let keys = location_keys(&["Berlin, Germany".into(), "Remote - Europe".into()]);
        assert_eq!(
            keys,
            [
                "berlin, germany",
                "berlin",
                "germany",
                "remote - europe",
                "remote",
                "europe"
            ]
        );
    }

    #[test]
    fn remote_policies() {
        let remote = posting(Workplace::Remote, &["Remote"], "");
        let berlin = posting(Workplace::Onsite, &["Berlin, Germany"], "");
        let paris = posting(Workplace::Hybrid, &["Paris"], "");
        let allowed = criteria(RemotePolicy::Allowed, &["Berlin"]);
        assert!(evaluate(&allowed, &remote, 0.9).is_ok());
        assert!(evaluate(&allowed, &berlin, 0.9).is_ok());
        assert_eq!(evaluate(&allowed, &paris, 0.9), Err(Rejection::Location));
        let required = criteria(RemotePolicy::Required, &[]);
        assert!(evaluate(&required, &remote, 0.9).is_ok());
        assert_eq!(evaluate(&required, &berlin, 0.9), Err(Rejection::NotRemote));
        let excluded = criteria(RemotePolicy::Excluded, &["paris"]);
        assert_eq!(evaluate(&excluded, &remote, 0.9), Err(Rejection::Remote));
        assert!(evaluate(&excluded, &paris, 0.9).is_ok());
        assert_eq!(evaluate(&excluded, &berlin, 0.9), Err(Rejection::Location));
    }

    #[test]
    fn terms_are_whole_words() {
        assert!(contains_term("we use go and rust", "go"));
        assert!(!contains_term("a good place", "go"));
        assert!(contains_term("modern c++ codebase", "C++"));
        assert!(contains_term("node.js, react", "node.js"));
        assert!(!contains_term("phpunit", "php"));
    }

    #[test]
    fn terms_and_score_decide_with_explanation() {
        let p = posting(
            Workplace::Remote,
            &[],
            "Rust services on Kubernetes. Some PHP legacy.",
        );
        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.must_have = vec!["rust".into()];
        c.preferred = vec!["kubernetes".into(), "kafka".into()];
        c.min_score = 0.4;
        let e = evaluate(&c, &p, 0.5).unwrap();
        assert_eq!(e.matched_terms, ["rust", "kubernetes"]);
        assert_eq!(e.missing_terms, ["kafka"]);
        assert_eq!(e.filters, ["remote: allowed (posting is remote)"]);
        assert_eq!(evaluate(&c, &p, 0.39), Err(Rejection::Score(0.39)));
        c.must_not_have = vec!["php".into()];
        assert_eq!(
            evaluate(&c, &p, 0.5),
            Err(Rejection::ForbiddenTerm("php".into()))
        );
        c.must_have = vec!["java".into()];
        assert_eq!(
            evaluate(&c, &p, 0.5),
            Err(Rejection::MissingTerm("java".into()))
        );
    }

    /// Both directions: over every combination of posting and rules, the store filters
    /// pass exactly what `evaluate` accepts (terms and score aside), and a subscription
    /// stored without the filter fields is never filtered out.
    #[test]
    fn subscription_filter_equals_evaluate_and_passes_old_points() {
        let postings = [
            posting(Workplace::Remote, &["Remote - Europe"], ""),
            posting(Workplace::Onsite, &["Berlin, Germany"], ""),
            posting(Workplace::Hybrid, &["Paris"], ""),
            posting(Workplace::Unknown, &[], ""),
            posting(Workplace::Onsite, &["London", "Paris, France"], ""),
        ];
        for policy in [
            RemotePolicy::Required,
            RemotePolicy::Allowed,
            RemotePolicy::Excluded,
        ] {
            for places in [
                &[][..],
                &["berlin"][..],
                &["Paris", "London"][..],
                &[" FRANCE "][..],
            ] {
                let c = criteria(policy, places);
                let stored = subscription_payload(&c);
                for p in &postings {
                    let filter = accepting_subscriptions(p);
                    let accepted = evaluate(&c, p, 1.0).is_ok();
                    assert_eq!(
                        accepted,
                        filter.accepts(&stored),
                        "{policy:?} {places:?} {:?}",
                        p.locations
                    );
                    assert!(filter.accepts(&Map::new()), "an old point is kept");
                }
            }
        }
    }

    #[test]
    fn prefilter_never_rejects_what_evaluate_accepts() {
        let postings = [
            posting(Workplace::Remote, &["Remote - Europe"], ""),
            posting(Workplace::Onsite, &["Berlin, Germany"], ""),
            posting(Workplace::Hybrid, &["Paris"], ""),
            posting(Workplace::Unknown, &[], ""),
        ];
        for policy in [
            RemotePolicy::Required,
            RemotePolicy::Allowed,
            RemotePolicy::Excluded,
        ] {
            for places in [&[][..], &["berlin"][..], &["Paris", "London"][..]] {
                let c = criteria(policy, places);
                let filter = prefilter(&c);
                for p in &postings {
                    let accepted = evaluate(&c, p, 1.0).is_ok();
                    let passes = filter.accepts(&job_payload(p));
                    assert_eq!(accepted, passes, "{policy:?} {places:?} {:?}", p.locations);
                }
            }
        }
    }
}
