//! Checks a spec and resolves what it refers to, giving what the workers read.
//!
//! One set of rules for both ways configuration arrives: YAML files (`jobmatch all -f`,
//! `jobmatch apply`) and custom resources (the operator). Every refusal names its field.
//! Lookups of Secrets and ConfigMaps are passed in, so this stays free of Kubernetes.

use crate::messages::{SourceConfig, SubscriptionConfig};
use crate::source::Board;
use crate::subscription::KeyRef;
use crate::{Channel, JobSourceSpec, MatchSubscriptionSpec};

/// A field that is wrong, and why: `spec.interval: must be at least 1s`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The path of the field, as a user writes it (`spec.notify.email.to`).
    pub field: String,
    pub message: String,
    /// The spec is fine but a Secret or ConfigMap it names (or its key) is missing: it
    /// may appear later, unlike a wrong value.
    pub missing_reference: bool,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            missing_reference: false,
        }
    }

    fn missing(field: &str, reference: Reference<'_>) -> Self {
        FieldError {
            missing_reference: true,
            ..FieldError::new(field, reference.describe())
        }
    }
}

/// What a spec refers to outside itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reference<'a> {
    Secret(&'a KeyRef),
    ConfigMap(&'a KeyRef),
}

impl Reference<'_> {
    fn describe(&self) -> String {
        match self {
            Reference::Secret(r) => format!("no Secret {:?} with key {:?}", r.name, r.key),
            Reference::ConfigMap(r) => format!("no ConfigMap {:?} with key {:?}", r.name, r.key),
        }
    }
}

/// Object names double as NATS subject tokens and KV keys: DNS-1123 labels only.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "metadata.name",
            "must be 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// A `JobSource` checked and ready for the fetchers.
pub fn source_config(name: &str, spec: JobSourceSpec) -> Result<SourceConfig, FieldError> {
    check_name(name)?;
    if name == crate::rpc::API_SOURCE {
        return Err(FieldError::new(
            "metadata.name",
            format!("{name:?} is reserved for jobs posted through the API"),
        ));
    }
    let min_interval = spec.board.min_interval();
    if spec.interval < min_interval {
        return Err(FieldError::new(
            "spec.interval",
            format!(
                "must be at least {} for a {} board",
                humantime::format_duration(min_interval),
                spec.board.kind()
            ),
        ));
    }
    if let Board::Feed { url, .. } | Board::CareerPage { url, .. } = &spec.board
        && !is_http_url(url)
    {
        return Err(FieldError::new(
            "spec.board.url",
            format!("{url:?} is not an http(s) URL"),
        ));
    }
    if spec.board.identity().trim().is_empty() {
        return Err(FieldError::new(
            "spec.board",
            format!("the {} board's identity is empty", spec.board.kind()),
        ));
    }
    if let Some(base) = &spec.base_url
        && !is_http_url(base)
    {
        return Err(FieldError::new(
            "spec.baseUrl",
            format!("{base:?} is not an http(s) URL"),
        ));
    }
    Ok(SourceConfig {
        name: name.to_owned(),
        spec,
    })
}

/// The Secrets and ConfigMaps a subscription refers to, in the order they are looked up.
pub fn subscription_references(spec: &MatchSubscriptionSpec) -> Vec<Reference<'_>> {
    let mut refs = Vec::new();
    if let Some(r) = &spec.resume.config_map_key_ref {
        refs.push(Reference::ConfigMap(r));
    }
    if let Some(r) = &spec.resume.secret_key_ref {
        refs.push(Reference::Secret(r));
    }
    if let Some(slack) = &spec.notify.slack {
        refs.push(Reference::Secret(&slack.webhook_secret_ref));
    }
    refs
}

/// A `MatchSubscription` checked, with its resume and Slack webhook looked up through
/// `lookup` (which answers `None` for a missing object or key).
pub fn subscription_config(
    name: &str,
    spec: MatchSubscriptionSpec,
    lookup: impl Fn(Reference<'_>) -> Option<String>,
) -> Result<SubscriptionConfig, FieldError> {
    check_name(name)?;
    let r = &spec.resume;
    let resume = match (&r.text, &r.config_map_key_ref, &r.secret_key_ref) {
        (Some(text), None, None) => text.clone(),
        (None, Some(key), None) => {
            let reference = Reference::ConfigMap(key);
            lookup(reference)
                .ok_or_else(|| FieldError::missing("spec.resume.configMapKeyRef", reference))?
        }
        (None, None, Some(key)) => {
            let reference = Reference::Secret(key);
            lookup(reference)
                .ok_or_else(|| FieldError::missing("spec.resume.secretKeyRef", reference))?
        }
        _ => {
            return Err(FieldError::new(
                "spec.resume",
                "set exactly one of text, configMapKeyRef or secretKeyRef",
            ));
        }
    };
    if resume.trim().is_empty() {
        return Err(FieldError::new("spec.resume", "the resume text is empty"));
    }
    criteria(&spec.criteria, "spec.criteria")?;
    let channel = match (&spec.notify.email, &spec.notify.slack) {
        (Some(email), None) => {
            if !is_email_address(&email.to) {
                return Err(FieldError::new(
                    "spec.notify.email.to",
                    format!("{:?} is not an email address", email.to),
                ));
            }
            Channel::Email {
                to: email.to.clone(),
            }
        }
        (None, Some(slack)) => {
            let reference = Reference::Secret(&slack.webhook_secret_ref);
            let url = lookup(reference).ok_or_else(|| {
                FieldError::missing("spec.notify.slack.webhookSecretRef", reference)
            })?;
            let url = url.trim();
            if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                let r = &slack.webhook_secret_ref;
                return Err(FieldError::new(
                    "spec.notify.slack.webhookSecretRef",
                    format!("Secret {:?} key {:?} is not an http(s) URL", r.name, r.key),
                ));
            }
            Channel::Slack {
                webhook_url: url.to_owned(),
            }
        }
        _ => {
            return Err(FieldError::new(
                "spec.notify",
                "set exactly one of email or slack",
            ));
        }
    };
    Ok(SubscriptionConfig {
        name: name.to_owned(),
        resume,
        criteria: spec.criteria,
        channel,
        schedule: spec.notify.schedule,
    })
}

/// Criteria checked wherever they come from (a MatchSubscription's `spec.criteria`, an
/// API body's `criteria`), each error naming the field under `at`.
pub fn criteria(c: &crate::Criteria, at: &str) -> Result<(), FieldError> {
    if !(0.0..=1.0).contains(&c.min_score) {
        return Err(FieldError::new(
            format!("{at}.minScore"),
            format!("{} is not between 0 and 1", c.min_score),
        ));
    }
    if c.top_k == 0 {
        return Err(FieldError::new(format!("{at}.topK"), "must be at least 1"));
    }
    if let Some(floor) = &c.min_salary {
        if !(floor.amount.is_finite() && floor.amount >= 0.0) {
            return Err(FieldError::new(
                format!("{at}.minSalary.amount"),
                format!("{} is not an amount of money", floor.amount),
            ));
        }
        let currency = floor.currency.trim();
        if currency.len() != 3 || !currency.chars().all(|ch| ch.is_ascii_alphabetic()) {
            return Err(FieldError::new(
                format!("{at}.minSalary.currency"),
                format!(
                    "{:?} is not an ISO 4217 code such as EUR, USD or GBP",
                    floor.currency
                ),
            ));
        }
    } else if c.require_salary {
        return Err(FieldError::new(
            format!("{at}.requireSalary"),
            "needs minSalary (the currency a salary must be stated in)",
        ));
    }
    for (i, code) in c.languages.iter().enumerate() {
        if crate::languages::by_code(code).is_none() {
            return Err(FieldError::new(
                format!("{at}.languages[{i}]"),
                format!(
                    "{code:?} is not a language code jobmatch knows (one of {})",
                    crate::languages::codes()
                ),
            ));
        }
    }
    for (i, code) in c.remote_regions.iter().enumerate() {
        if crate::places::region(code).is_none() {
            return Err(FieldError::new(
                format!("{at}.remoteRegions[{i}]"),
                format!(
                    "{code:?} is not a region jobmatch knows (one of {})",
                    crate::places::region_codes()
                ),
            ));
        }
    }
    Ok(())
}

/// `local@domain` with a dotted or bracketed domain and no whitespace: what an SMTP
/// server would take as a recipient. Deliberately not full RFC 5322.
fn is_email_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !local.contains(['<', '>', ',', ';'])
        && !domain.contains(['<', '>', ',', ';', '@'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::{EmailSpec, NotifySpec, ResumeSpec, SlackSpec};

    fn email_spec(to: &str) -> MatchSubscriptionSpec {
        MatchSubscriptionSpec {
            resume: ResumeSpec::inline("Rust engineer"),
            criteria: Default::default(),
            notify: NotifySpec {
                email: Some(EmailSpec { to: to.into() }),
                slack: None,
                schedule: Default::default(),
            },
        }
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(check_name("ada-2").is_ok());
        for bad in ["", "Ada", "a.b", "-a", "a-", &"x".repeat(64)] {
            assert_eq!(check_name(bad).unwrap_err().field, "metadata.name", "{bad}");
        }
    }

    #[test]
    fn the_api_source_name_is_reserved() {
        let spec: JobSourceSpec = from_json(r#"{"board": {"kind": "remoteok"}}"#);
        assert!(source_config("boards", spec.clone()).is_ok());
        let err = source_config(crate::rpc::API_SOURCE, spec).unwrap_err();
        assert_eq!(err.field, "metadata.name");
        assert!(err.message.contains("reserved"), "{}", err.message);
    }

    fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).expect("valid JSON")
    }

    #[test]
    fn bad_email_names_the_field() {
        let err = subscription_config("ada", email_spec("not an address"), |_| None).unwrap_err();
        assert_eq!(err.field, "spec.notify.email.to");
        assert!(subscription_config("ada", email_spec("ada@example.com"), |_| None).is_ok());
    }

    #[test]
    fn resume_and_webhook_come_through_the_lookup() {
        let key = |name: &str, key: &str| KeyRef {
            name: name.into(),
            key: key.into(),
        };
        let mut spec = email_spec("ada@example.com");
        spec.resume = ResumeSpec {
            text: None,
            config_map_key_ref: Some(key("resumes", "ada")),
            secret_key_ref: None,
        };
        spec.notify.email = None;
        spec.notify.slack = Some(SlackSpec {
            webhook_secret_ref: key("hooks", "ada"),
        });
        assert_eq!(subscription_references(&spec).len(), 2);
        let lookup = |r: Reference<'_>| match r {
            Reference::ConfigMap(k) if k.name == "resumes" => Some("Go developer".to_owned()),
            Reference::Secret(k) if k.name == "hooks" => {
                Some("https://hooks.slack.com/services/x\n".to_owned())
            }
            _ => None,
        };
        let config = subscription_config("ada", spec.clone(), lookup).unwrap();
        assert_eq!(config.resume, "Go developer");
        assert_eq!(
            config.channel,
            Channel::Slack {
                webhook_url: "https://hooks.slack.com/services/x".into()
            }
        );
        let err = subscription_config("ada", spec, |_| None).unwrap_err();
        assert_eq!(err.field, "spec.resume.configMapKeyRef");
        assert!(err.missing_reference);
        assert!(err.message.contains("\"resumes\""), "{err}");
    }

    #[test]
    fn two_resume_sources_are_refused() {
        let mut spec = email_spec("ada@example.com");
        spec.resume.secret_key_ref = Some(KeyRef {
            name: "s".into(),
            key: "k".into(),
        });
        let err = subscription_config("ada", spec, |_| Some("x".into())).unwrap_err();
        assert_eq!(err.field, "spec.resume");
    }

    #[test]
    fn new_criteria_name_the_field_they_fail_on() {
        let check = |criteria: &str| {
            let mut spec = email_spec("ada@example.com");
            spec.criteria = from_json(criteria);
            subscription_config("ada", spec, |_| None).map(|c| c.criteria)
        };
        let ok = check(
            r#"{"minSalary": {"amount": 60000, "currency": "EUR"}, "languages": ["en", "de"],
                "seniority": ["senior"], "employmentTypes": ["full-time"], "remoteRegions": ["europe"]}"#,
        )
        .expect("valid");
        assert_eq!(ok.languages, ["en", "de"]);
        let field = |criteria: &str| check(criteria).expect_err(criteria).field;
        assert_eq!(
            field(r#"{"languages": ["en", "xx"]}"#),
            "spec.criteria.languages[1]"
        );
        assert_eq!(
            field(r#"{"remoteRegions": ["mars"]}"#),
            "spec.criteria.remoteRegions[0]"
        );
        assert_eq!(
            field(r#"{"minSalary": {"amount": 1, "currency": "euro"}}"#),
            "spec.criteria.minSalary.currency"
        );
        assert_eq!(
            field(r#"{"requireSalary": true}"#),
            "spec.criteria.requireSalary"
        );
    }
}
