//! Whether a posting matches a subscription, and why: pure functions.
//!
//! [`evaluate`] is the single source of truth. Its hard rules (remote policy, places,
//! remote regions, seniority, employment type, languages) are also vector-store
//! filters, both ways: [`prefilter`] (a subscription's criteria over job
//! points: a backfill skips the jobs that cannot match) and [`accepting_subscriptions`]
//! (a job over subscription points, stored with [`subscription_payload`]: a new job's
//! search skips the subscriptions that would refuse it). Neither ever rejects what
//! `evaluate` accepts (tested below). The salary floor is not a filter (the store's
//! filters are keywords): `evaluate` alone decides it.

use jobmatch_core::messages::Explanation;
use jobmatch_core::{
    Criteria, EmploymentType, Posting, RemotePolicy, Seniority, Workplace, languages, places,
};
use serde_json::{Map, Value, json};

use super::facts::{PostingFacts, yearly_salary};
use crate::store::{Condition, Filter};

/// Payload fields of a job point.
pub const WORKPLACE_FIELD: &str = "workplace";
pub const LOCATION_FIELD: &str = "location_keys";
pub const POSTING_FIELD: &str = "posting";
/// The posting's facts ([`PostingFacts`]) as keywords; `facts` marks a point that has
/// them (one stored before them is read again).
pub const LANGUAGE_FIELD: &str = "language";
pub const REQUIRED_LANGUAGES_FIELD: &str = "required_languages";
pub const SENIORITY_FIELD: &str = "seniority";
pub const EMPLOYMENT_TYPE_FIELD: &str = "employment_type";
/// `restricted` on a remote posting limited to `remote_regions`.
pub const REMOTE_SCOPE_FIELD: &str = "remote_scope";
pub const REMOTE_REGIONS_FIELD: &str = "remote_regions";
const FACTS_FIELD: &str = "facts";
/// The keyword fields of job points the store filters on (indexed).
pub const JOB_FILTER_FIELDS: [&str; 8] = [
    WORKPLACE_FIELD,
    LOCATION_FIELD,
    LANGUAGE_FIELD,
    REQUIRED_LANGUAGES_FIELD,
    SENIORITY_FIELD,
    EMPLOYMENT_TYPE_FIELD,
    REMOTE_SCOPE_FIELD,
    REMOTE_REGIONS_FIELD,
];

/// Payload fields of a subscription point, its hard criteria as keywords: the remote
/// policy, whether it names places (`listed`) or takes any (`anywhere`), and the places.
pub const REMOTE_POLICY_FIELD: &str = "remote";
pub const PLACES_RULE_FIELD: &str = "places";
pub const WANTED_LOCATIONS_FIELD: &str = "wanted_locations";
/// Each list rule the same way: `<rule>` is `listed` or `any`, the list beside it.
pub const SENIORITY_RULE_FIELD: &str = "seniority_rule";
pub const WANTED_SENIORITY_FIELD: &str = "wanted_seniority";
pub const EMPLOYMENT_RULE_FIELD: &str = "employment_rule";
pub const WANTED_EMPLOYMENT_FIELD: &str = "wanted_employment";
pub const LANGUAGES_RULE_FIELD: &str = "languages_rule";
pub const WORKING_LANGUAGES_FIELD: &str = "working_languages";
pub const REGIONS_RULE_FIELD: &str = "regions_rule";
pub const WANTED_REGIONS_FIELD: &str = "wanted_regions";
/// The keyword fields of subscription points the store filters on (indexed).
pub const SUBSCRIPTION_FILTER_FIELDS: [&str; 11] = [
    REMOTE_POLICY_FIELD,
    PLACES_RULE_FIELD,
    WANTED_LOCATIONS_FIELD,
    SENIORITY_RULE_FIELD,
    WANTED_SENIORITY_FIELD,
    EMPLOYMENT_RULE_FIELD,
    WANTED_EMPLOYMENT_FIELD,
    LANGUAGES_RULE_FIELD,
    WORKING_LANGUAGES_FIELD,
    REGIONS_RULE_FIELD,
    WANTED_REGIONS_FIELD,
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
    /// A remote posting restricted to these regions.
    RemoteRegion(Vec<String>),
    Seniority(Seniority),
    EmploymentType(EmploymentType),
    /// Written in this language.
    Language(String),
    /// Requires this language.
    RequiredLanguage(String),
    /// Pays at most this much a year in the floor's currency.
    Salary(f64),
    /// `requireSalary`, and no salary in the floor's currency.
    NoSalary,
}

/// The names a location can be matched by, each place in its one spelling
/// ([`places::canonical`]): the whole string and its parts (`"Berlin, Germany"` →
/// `berlin, germany`, `berlin`, `germany`; `"Leeds, United Kingdom"` → `leeds, uk`,
/// `leeds`, `uk`).
pub fn location_keys(locations: &[String]) -> Vec<String> {
    let mut keys = Vec::new();
    for location in locations {
        let parts = place_parts(location);
        let whole = places::canonical(location);
        let joined = parts.join(", ");
        for key in [whole, joined].into_iter().chain(parts) {
            if !key.is_empty() && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// The parts of a place's text (`"Leeds, United Kingdom"`, `"Remote - Europe"`), each in
/// its one spelling.
fn place_parts(text: &str) -> Vec<String> {
    text.split([',', ';', '/', '|', '(', ')'])
        .flat_map(|part| part.split(" - "))
        .map(places::canonical)
        .filter(|p| !p.is_empty())
        .collect()
}

fn workplace_name(w: Workplace) -> &'static str {
    match w {
        Workplace::Remote => "remote",
        Workplace::Hybrid => "hybrid",
        Workplace::Onsite => "onsite",
        Workplace::Unknown => "unknown",
    }
}

/// The payload stored with a job's vector: its filter fields, its facts and itself.
pub fn job_payload(posting: &Posting, facts: &PostingFacts) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert(
        WORKPLACE_FIELD.into(),
        json!(workplace_name(posting.workplace)),
    );
    payload.insert(
        LOCATION_FIELD.into(),
        json!(location_keys(&posting.locations)),
    );
    if let Some(language) = &facts.language {
        payload.insert(LANGUAGE_FIELD.into(), json!(language));
    }
    payload.insert(
        REQUIRED_LANGUAGES_FIELD.into(),
        json!(facts.required_languages),
    );
    if let Some(level) = facts.seniority {
        payload.insert(SENIORITY_FIELD.into(), json!(level.as_str()));
    }
    if let Some(kind) = facts.employment_type {
        payload.insert(EMPLOYMENT_TYPE_FIELD.into(), json!(kind.as_str()));
    }
    if !facts.remote_regions.is_empty() {
        payload.insert(REMOTE_SCOPE_FIELD.into(), json!("restricted"));
    }
    payload.insert(REMOTE_REGIONS_FIELD.into(), json!(facts.remote_regions));
    payload.insert(FACTS_FIELD.into(), json!(1));
    payload.insert(POSTING_FIELD.into(), json!(posting));
    payload
}

/// The facts a job point was stored with, `None` for a point stored before them.
pub fn stored_facts(payload: &Map<String, Value>) -> Option<PostingFacts> {
    payload.get(FACTS_FIELD)?;
    let text = |field: &str| payload.get(field).and_then(Value::as_str);
    let list = |field: &str| -> Vec<String> {
        payload
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(PostingFacts {
        language: text(LANGUAGE_FIELD).map(str::to_owned),
        required_languages: list(REQUIRED_LANGUAGES_FIELD),
        seniority: text(SENIORITY_FIELD).and_then(Seniority::from_word),
        employment_type: text(EMPLOYMENT_TYPE_FIELD).and_then(EmploymentType::from_word),
        remote_regions: list(REMOTE_REGIONS_FIELD),
    })
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
    let mut list = |rule: &str, field: &str, items: Vec<&str>| {
        let listed = if items.is_empty() { "any" } else { "listed" };
        payload.insert(rule.into(), json!(listed));
        payload.insert(field.into(), json!(items));
    };
    list(
        SENIORITY_RULE_FIELD,
        WANTED_SENIORITY_FIELD,
        criteria.seniority.iter().map(|s| s.as_str()).collect(),
    );
    list(
        EMPLOYMENT_RULE_FIELD,
        WANTED_EMPLOYMENT_FIELD,
        criteria
            .employment_types
            .iter()
            .map(|t| t.as_str())
            .collect(),
    );
    list(
        LANGUAGES_RULE_FIELD,
        WORKING_LANGUAGES_FIELD,
        criteria.languages.iter().map(String::as_str).collect(),
    );
    list(
        REGIONS_RULE_FIELD,
        WANTED_REGIONS_FIELD,
        criteria.remote_regions.iter().map(String::as_str).collect(),
    );
    payload
}

/// "Lists values for `rule`, and not `value`": a subscription that refuses a posting
/// whose `rule` value is `value` (one of `values`).
fn refusing(rule: &str, field: &str, values: Vec<String>) -> Condition {
    Condition::Nested(Filter {
        must: vec![Condition::keyword(rule, "listed")],
        must_not: vec![Condition::AnyKeyword {
            key: field.into(),
            values,
        }],
        ..Default::default()
    })
}

/// The subscriptions whose remote and location rules accept `posting`, as a store
/// filter over points stored with [`subscription_payload`]. Only `must_not` conditions,
/// so a point stored before these fields existed is never filtered out (`evaluate`
/// still decides it).
pub fn accepting_subscriptions(posting: &Posting, facts: &PostingFacts) -> Filter {
    let policy = |p| Condition::keyword(REMOTE_POLICY_FIELD, policy_name(p));
    let mut must_not = Vec::new();
    if posting.workplace == Workplace::Remote {
        must_not.push(policy(RemotePolicy::Excluded));
        if !facts.remote_regions.is_empty() {
            let overlapping = places::overlapping(facts.remote_regions.iter().map(String::as_str));
            must_not.push(refusing(
                REGIONS_RULE_FIELD,
                WANTED_REGIONS_FIELD,
                overlapping.into_iter().map(str::to_owned).collect(),
            ));
        }
    } else {
        // Listing places, none of them this posting's.
        let elsewhere = Filter {
            must: vec![Condition::keyword(PLACES_RULE_FIELD, "listed")],
            must_not: vec![Condition::AnyKeyword {
                key: WANTED_LOCATIONS_FIELD.into(),
                values: location_keys(&posting.locations),
            }],
            ..Default::default()
        };
        must_not.extend([policy(RemotePolicy::Required), Condition::Nested(elsewhere)]);
    }
    if let Some(level) = facts.seniority {
        must_not.push(refusing(
            SENIORITY_RULE_FIELD,
            WANTED_SENIORITY_FIELD,
            vec![level.as_str().to_owned()],
        ));
    }
    if let Some(kind) = facts.employment_type {
        must_not.push(refusing(
            EMPLOYMENT_RULE_FIELD,
            WANTED_EMPLOYMENT_FIELD,
            vec![kind.as_str().to_owned()],
        ));
    }
    for language in facts.language.iter().chain(&facts.required_languages) {
        must_not.push(refusing(
            LANGUAGES_RULE_FIELD,
            WORKING_LANGUAGES_FIELD,
            vec![language.clone()],
        ));
    }
    Filter {
        must_not,
        ..Default::default()
    }
}

fn wanted_locations(criteria: &Criteria) -> Vec<String> {
    criteria
        .locations
        .iter()
        // Each part in its one spelling, as `location_keys` writes a posting's.
        .map(|l| place_parts(l).join(", "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The hard rules of `criteria` (all but the salary floor) as a store filter over job
/// points stored with [`job_payload`]. Its added rules are `must_not` only, so a job
/// stored before its facts were is left to `evaluate`.
pub fn prefilter(criteria: &Criteria) -> Filter {
    let remote = Condition::keyword(WORKPLACE_FIELD, "remote");
    let wanted = wanted_locations(criteria);
    let in_location = (!wanted.is_empty()).then(|| Condition::AnyKeyword {
        key: LOCATION_FIELD.into(),
        values: wanted,
    });
    let mut filter = match (criteria.remote, in_location) {
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
    };
    let others = |all: Vec<&str>, listed: &[&str]| -> Vec<String> {
        all.into_iter()
            .filter(|v| !listed.contains(v))
            .map(str::to_owned)
            .collect()
    };
    if !criteria.seniority.is_empty() {
        let listed: Vec<&str> = criteria.seniority.iter().map(|s| s.as_str()).collect();
        let all = Seniority::ALL.iter().map(|s| s.as_str()).collect();
        filter.must_not.push(Condition::AnyKeyword {
            key: SENIORITY_FIELD.into(),
            values: others(all, &listed),
        });
    }
    if !criteria.employment_types.is_empty() {
        let listed: Vec<&str> = criteria
            .employment_types
            .iter()
            .map(|t| t.as_str())
            .collect();
        let all = EmploymentType::ALL.iter().map(|t| t.as_str()).collect();
        filter.must_not.push(Condition::AnyKeyword {
            key: EMPLOYMENT_TYPE_FIELD.into(),
            values: others(all, &listed),
        });
    }
    if !criteria.languages.is_empty() {
        let listed: Vec<&str> = criteria.languages.iter().map(String::as_str).collect();
        let all: Vec<&str> = languages::LANGUAGES.iter().map(|l| l.code).collect();
        for field in [LANGUAGE_FIELD, REQUIRED_LANGUAGES_FIELD] {
            filter.must_not.push(Condition::AnyKeyword {
                key: field.into(),
                values: others(all.clone(), &listed),
            });
        }
    }
    if !criteria.remote_regions.is_empty() {
        let near = places::overlapping(criteria.remote_regions.iter().map(String::as_str));
        filter.must_not.push(Condition::Nested(Filter {
            must: vec![Condition::keyword(REMOTE_SCOPE_FIELD, "restricted")],
            must_not: vec![Condition::AnyKeyword {
                key: REMOTE_REGIONS_FIELD.into(),
                values: near.into_iter().map(str::to_owned).collect(),
            }],
            ..Default::default()
        }));
    }
    filter
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
    facts: std::cell::OnceCell<PostingFacts>,
}

impl<'a> PostingText<'a> {
    pub fn new(posting: &'a Posting) -> Self {
        Self {
            posting,
            text: std::cell::OnceCell::new(),
            facts: std::cell::OnceCell::new(),
        }
    }

    /// With the facts already read (a stored job's, or a new job's read for its filter).
    pub fn with_facts(posting: &'a Posting, facts: PostingFacts) -> Self {
        let text = Self::new(posting);
        let _ = text.facts.set(facts);
        text
    }

    /// A stored job: its stored facts, or read again for a point stored before them.
    pub fn stored(posting: &'a Posting, payload: &Map<String, Value>) -> Self {
        match stored_facts(payload) {
            Some(facts) => Self::with_facts(posting, facts),
            None => Self::new(posting),
        }
    }

    fn get(&self) -> &str {
        self.text.get_or_init(|| self.posting.searchable_text())
    }

    pub fn facts(&self) -> &PostingFacts {
        self.facts.get_or_init(|| PostingFacts::of(self.posting))
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

    hard_rules(criteria, text, &mut filters)?;

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

/// The remote-region, seniority, employment-type, language and salary rules, each
/// one passed written to `filters`.
fn hard_rules(
    criteria: &Criteria,
    text: &PostingText,
    filters: &mut Vec<String>,
) -> Result<(), Rejection> {
    // The facts are read only for a subscription that has one of these rules.
    if !criteria.remote_regions.is_empty()
        || !criteria.seniority.is_empty()
        || !criteria.employment_types.is_empty()
        || !criteria.languages.is_empty()
    {
        let facts = text.facts();
        if !criteria.remote_regions.is_empty() && !facts.remote_regions.is_empty() {
            let fits = facts.remote_regions.iter().any(|r| {
                criteria
                    .remote_regions
                    .iter()
                    .any(|c| places::overlap(r, c))
            });
            if !fits {
                return Err(Rejection::RemoteRegion(facts.remote_regions.clone()));
            }
            filters.push(format!(
                "remote region: {} (you: {})",
                facts.remote_regions.join(", "),
                criteria.remote_regions.join(", ")
            ));
        }
        if !criteria.seniority.is_empty() {
            match facts.seniority {
                Some(level) if criteria.seniority.contains(&level) => {
                    filters.push(format!("seniority: {}", level.as_str()))
                }
                Some(level) => return Err(Rejection::Seniority(level)),
                None => filters.push("seniority: not stated".to_owned()),
            }
        }
        if !criteria.employment_types.is_empty() {
            match facts.employment_type {
                Some(kind) if criteria.employment_types.contains(&kind) => {
                    filters.push(format!("employment type: {}", kind.as_str()))
                }
                Some(kind) => return Err(Rejection::EmploymentType(kind)),
                None => filters.push("employment type: not stated".to_owned()),
            }
        }
        if !criteria.languages.is_empty() {
            let speaks = |code: &String| criteria.languages.contains(code);
            if let Some(language) = &facts.language
                && !speaks(language)
            {
                return Err(Rejection::Language(language.clone()));
            }
            if let Some(language) = facts.required_languages.iter().find(|l| !speaks(l)) {
                return Err(Rejection::RequiredLanguage(language.clone()));
            }
            let mut line = format!(
                "language: written in {}",
                facts
                    .language
                    .as_deref()
                    .unwrap_or("an undetected language")
            );
            if !facts.required_languages.is_empty() {
                line.push_str(&format!(
                    ", requires {}",
                    facts.required_languages.join(", ")
                ));
            }
            filters.push(line);
        }
    }
    if let Some(floor) = &criteria.min_salary {
        let currency = floor.currency.trim().to_uppercase();
        let wanted = floor.amount * floor.period.per_year();
        match yearly_salary(text.posting) {
            Some((top, c)) if c == currency && top >= wanted => filters.push(format!(
                "salary: up to {top:.0} {c} a year (at least {wanted:.0})"
            )),
            Some((top, c)) if c == currency => return Err(Rejection::Salary(top)),
            _ if criteria.require_salary => return Err(Rejection::NoSalary),
            _ => filters.push(format!("salary: not stated in {currency}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmatch_core::SalaryPeriod;

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
                "remote, europe",
                "remote",
                "europe"
            ]
        );
        // A place in any of its spellings, on either side.
        let c = criteria(RemotePolicy::Allowed, &["Munich", "Leeds, UK", "New York"]);
        for place in ["München, Germany", "Leeds, United Kingdom", "NYC"] {
            let p = posting(Workplace::Onsite, &[place], "");
            assert!(evaluate(&c, &p, 0.9).is_ok(), "{place}");
            assert!(
                accepting_subscriptions(&p, &PostingFacts::of(&p))
                    .accepts(&subscription_payload(&c))
            );
            assert!(prefilter(&c).accepts(&job_payload(&p, &PostingFacts::of(&p))));
        }
        let leeds = posting(Workplace::Onsite, &["Leeds, Alabama"], "");
        assert_eq!(evaluate(&c, &leeds, 0.9), Err(Rejection::Location));
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

    const ENGLISH: &str = "We are looking for an experienced engineer to build and run our \
        platform. You will work with Rust and Kubernetes in a small team, review code, and \
        share the on-call rotation with your colleagues.";
    const GERMAN: &str = "Wir suchen eine erfahrene Entwicklerin oder einen erfahrenen \
        Entwickler für unsere Plattform. Du arbeitest mit Rust und Kubernetes in einem \
        kleinen Team und bist für den Betrieb unserer Dienste mitverantwortlich.";

    /// Postings of every kind the rules tell apart.
    fn postings() -> Vec<Posting> {
        let salary = |max: f64, currency: &str, interval: &str| {
            Some(jobmatch_core::Salary {
                min: None,
                max: Some(max),
                currency: Some(currency.into()),
                interval: Some(interval.into()),
            })
        };
        let mut all = vec![
            posting(Workplace::Remote, &["Remote - Europe"], ENGLISH),
            posting(Workplace::Remote, &["Remote (UK only)"], ENGLISH),
            posting(Workplace::Remote, &["Remote - US"], ENGLISH),
            posting(Workplace::Remote, &["Remote"], GERMAN),
            posting(Workplace::Onsite, &["Berlin, Germany"], GERMAN),
            posting(Workplace::Onsite, &["München"], ENGLISH),
            posting(Workplace::Hybrid, &["Paris"], ENGLISH),
            posting(Workplace::Unknown, &[], ""),
            posting(Workplace::Onsite, &["London", "Paris, France"], ENGLISH),
        ];
        all[0].title = "Senior Backend Engineer".into();
        all[0].employment_type = Some("full-time".into());
        all[0].salary = salary(90_000.0, "EUR", "year");
        all[1].title = "Junior Developer".into();
        all[1].employment_type = Some("contract".into());
        all[2].salary = salary(60.0, "USD", "hour");
        all[3].description = format!("{GERMAN} Fließendes Deutsch erforderlich.");
        all[4].seniority = Some("lead".into());
        all[4].salary = salary(5_000.0, "EUR", "month");
        all[5].description = format!("{ENGLISH} Fluent German required.");
        all[5].employment_type = Some("Teilzeit".into());
        all[6].salary = salary(40_000.0, "EUR", "year");
        all
    }

    /// Criteria of every kind: remote policy and places, then each added rule.
    fn all_criteria() -> Vec<Criteria> {
        let mut all = Vec::new();
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
                &["Munich"][..],
            ] {
                all.push(criteria(policy, places));
            }
        }
        let base = criteria(RemotePolicy::Allowed, &[]);
        let floor = |amount: f64, currency: &str, period| {
            Some(jobmatch_core::SalaryFloor {
                amount,
                currency: currency.into(),
                period,
            })
        };
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        type Rule = Box<dyn Fn(&mut Criteria)>;
        let added: Vec<Rule> = vec![
            Box::new(|c| c.seniority = vec![Seniority::Senior, Seniority::Lead]),
            Box::new(|c| c.seniority = vec![Seniority::Junior]),
            Box::new(|c| c.employment_types = vec![EmploymentType::FullTime]),
            Box::new(|c| {
                c.employment_types = vec![EmploymentType::Contract, EmploymentType::PartTime]
            }),
            Box::new(move |c| c.languages = strings(&["en"])),
            Box::new(move |c| c.languages = strings(&["en", "de"])),
            Box::new(move |c| c.languages = strings(&["de"])),
            Box::new(move |c| c.remote_regions = strings(&["fr"])),
            Box::new(move |c| c.remote_regions = strings(&["europe"])),
            Box::new(move |c| c.remote_regions = strings(&["us", "uk"])),
            Box::new(move |c| c.min_salary = floor(70_000.0, "EUR", SalaryPeriod::Year)),
            Box::new(move |c| {
                c.min_salary = floor(5_500.0, "EUR", SalaryPeriod::Month);
                c.require_salary = true;
            }),
            Box::new(move |c| c.min_salary = floor(100_000.0, "usd", SalaryPeriod::Year)),
        ];
        for (i, first) in added.iter().enumerate() {
            let mut one = base.clone();
            first(&mut one);
            all.push(one.clone());
            for second in &added[i + 1..] {
                let mut two = one.clone();
                second(&mut two);
                all.push(two);
            }
        }
        all
    }

    /// Both directions: over every combination of posting and rules, the store filters
    /// pass exactly what `evaluate` accepts (terms, score and salary aside: the salary
    /// floor is no filter, so they may pass more there, never less), and a point
    /// stored without the filter fields is never filtered out.
    #[test]
    fn filters_equal_evaluate_both_ways_and_pass_old_points() {
        let postings = postings();
        let facts: Vec<PostingFacts> = postings.iter().map(PostingFacts::of).collect();
        let mut checked = 0;
        for c in all_criteria() {
            let stored = subscription_payload(&c);
            let jobs_filter = prefilter(&c);
            for (p, f) in postings.iter().zip(&facts) {
                let accepted =
                    evaluate_text(&c, &PostingText::with_facts(p, f.clone()), 1.0).is_ok();
                let subscriptions_filter = accepting_subscriptions(p, f);
                let stored_job = job_payload(p, f);
                for (name, passes) in [
                    (
                        "accepting_subscriptions",
                        subscriptions_filter.accepts(&stored),
                    ),
                    ("prefilter", jobs_filter.accepts(&stored_job)),
                ] {
                    if c.min_salary.is_none() {
                        assert_eq!(accepted, passes, "{name}: {c:?} on {:?} {f:?}", p.locations);
                    } else {
                        assert!(
                            passes || !accepted,
                            "{name} rejects what evaluate accepts: {c:?} on {:?} {f:?}",
                            p.locations
                        );
                    }
                }
                assert!(
                    subscriptions_filter.accepts(&Map::new()),
                    "an old subscription is kept"
                );
                assert!(
                    !accepted || jobs_filter.accepts(&job_payload_without_facts(p)),
                    "an old job is kept where evaluate takes it"
                );
                // A stored job reads back the facts it was stored with.
                assert_eq!(stored_facts(&stored_job).as_ref(), Some(f));
                checked += 1;
            }
        }
        assert!(checked > 900, "{checked}");
    }

    /// What a job point held before its facts were stored.
    fn job_payload_without_facts(p: &Posting) -> Map<String, Value> {
        let mut payload = Map::new();
        payload.insert(WORKPLACE_FIELD.into(), json!(workplace_name(p.workplace)));
        payload.insert(LOCATION_FIELD.into(), json!(location_keys(&p.locations)));
        payload.insert(POSTING_FIELD.into(), json!(p));
        payload
    }

    #[test]
    fn each_added_rule_decides_and_says_why() {
        let all = postings();
        let facts = |p: &Posting| PostingFacts::of(p);
        let check = |c: &Criteria, p: &Posting| evaluate(c, p, 1.0);
        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.seniority = vec![Seniority::Senior];
        assert_eq!(facts(&all[1]).seniority, Some(Seniority::Junior));
        assert_eq!(
            check(&c, &all[1]),
            Err(Rejection::Seniority(Seniority::Junior))
        );
        assert!(
            check(&c, &all[0])
                .unwrap()
                .filters
                .contains(&"seniority: senior".to_owned())
        );

        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.remote_regions = vec!["fr".into()];
        assert_eq!(
            check(&c, &all[1]),
            Err(Rejection::RemoteRegion(vec!["uk".into()]))
        );
        assert!(check(&c, &all[0]).is_ok(), "Europe takes France");
        assert!(check(&c, &all[3]).is_ok(), "unrestricted remote");

        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.languages = vec!["en".into()];
        assert_eq!(check(&c, &all[4]), Err(Rejection::Language("de".into())));
        assert_eq!(
            check(&c, &all[5]),
            Err(Rejection::RequiredLanguage("de".into()))
        );
        c.languages.push("de".into());
        assert!(check(&c, &all[5]).is_ok());

        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.employment_types = vec![EmploymentType::FullTime];
        assert_eq!(
            check(&c, &all[5]),
            Err(Rejection::EmploymentType(EmploymentType::PartTime))
        );

        let mut c = criteria(RemotePolicy::Allowed, &[]);
        c.min_salary = Some(jobmatch_core::SalaryFloor {
            amount: 65_000.0,
            currency: "EUR".into(),
            period: SalaryPeriod::Year,
        });
        assert!(check(&c, &all[0]).is_ok(), "90k a year");
        assert_eq!(
            check(&c, &all[4]),
            Err(Rejection::Salary(60_000.0)),
            "5,000 a month"
        );
        assert_eq!(check(&c, &all[6]), Err(Rejection::Salary(40_000.0)));
        assert!(
            check(&c, &all[2]).is_ok(),
            "USD is not comparable: unknown passes"
        );
        c.require_salary = true;
        assert_eq!(check(&c, &all[2]), Err(Rejection::NoSalary));
        assert_eq!(check(&c, &all[7]), Err(Rejection::NoSalary));
    }
}
