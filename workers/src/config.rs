//! The configuration documents: the same YAML a user would `kubectl apply`, read from
//! files for `jobmatch all -f` and `jobmatch apply -f`.
//!
//! Kinds `JobSource` and `MatchSubscription` (apiVersion `jobmatch.dev/v1alpha1`) and
//! `Secret` (`stringData` or base64 `data`). Every document is checked on its own: a bad
//! one is reported with its file, position and field, and the rest still load.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use jobmatch_core::messages::{SourceConfig, SubscriptionConfig};
use jobmatch_core::validate::{self, Reference};
use jobmatch_core::{API_VERSION, JobSourceSpec, MatchSubscriptionSpec};
use serde::Deserialize;

/// Where a document came from, for error messages: `examples/ada.yaml#2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentPlace {
    pub file: PathBuf,
    /// 1-based position of the document in its file.
    pub index: usize,
}

impl fmt::Display for DocumentPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file.display(), self.index)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{place}: not valid YAML: {message}")]
    Yaml {
        place: DocumentPlace,
        message: String,
    },
    #[error("{place}: unknown kind {kind:?} (expected JobSource, MatchSubscription or Secret)")]
    UnknownKind { place: DocumentPlace, kind: String },
    #[error("{place}: {kind} has apiVersion {found:?}, expected {API_VERSION:?}")]
    ApiVersion {
        place: DocumentPlace,
        kind: String,
        found: String,
    },
    #[error("{place}: {kind} {name:?}: {message}")]
    Invalid {
        place: DocumentPlace,
        kind: &'static str,
        name: String,
        message: String,
    },
}

impl ConfigError {
    /// A stable, low-cardinality name for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Yaml { .. } => "yaml",
            ConfigError::UnknownKind { .. } => "unknown_kind",
            ConfigError::ApiVersion { .. } => "api_version",
            ConfigError::Invalid { .. } => "invalid",
        }
    }
}

/// Everything that loaded, and everything that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sources: Vec<SourceConfig>,
    pub subscriptions: Vec<SubscriptionConfig>,
    pub errors: Vec<ConfigError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Document<S> {
    spec: S,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SecretDocument {
    #[serde(default)]
    string_data: BTreeMap<String, String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// Secrets by name, then key.
type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// Reads every `.yaml`/`.yml` file under each path (files or directories, sorted).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut documents = Vec::new();
    let mut loaded = Loaded::default();
    for path in paths {
        match yaml_files(path) {
            Ok(files) => {
                for file in files {
                    match std::fs::read_to_string(&file) {
                        Ok(text) => documents.push((file, text)),
                        Err(source) => loaded.errors.push(ConfigError::Read { path: file, source }),
                    }
                }
            }
            Err(source) => loaded.errors.push(ConfigError::Read {
                path: path.clone(),
                source,
            }),
        }
    }
    let texts: Vec<(&Path, &str)> = documents
        .iter()
        .map(|(p, t)| (p.as_path(), t.as_str()))
        .collect();
    let mut parsed = parse_documents(&texts);
    parsed.errors.splice(0..0, loaded.errors);
    parsed
}

fn yaml_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        // Surface a missing file as a read error rather than silently loading nothing.
        std::fs::metadata(path)?;
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?.path();
        if entry.is_dir() {
            files.extend(yaml_files(&entry)?);
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(entry);
        }
    }
    files.sort();
    Ok(files)
}

/// Parses YAML texts (each possibly several `---` documents). Secrets are read first so a
/// subscription may refer to a Secret in any file.
pub fn parse_documents(files: &[(&Path, &str)]) -> Loaded {
    let mut loaded = Loaded::default();
    let mut values = Vec::new();
    for (file, text) in files {
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let place = DocumentPlace {
                file: file.to_path_buf(),
                index: i + 1,
            };
            match serde_yaml_ng::Value::deserialize(document) {
                Ok(serde_yaml_ng::Value::Null) => {}
                Ok(value) => values.push((place, value)),
                Err(e) => loaded.errors.push(ConfigError::Yaml {
                    place,
                    message: e.to_string(),
                }),
            }
        }
    }

    let mut secrets = Secrets::new();
    let mut typed = Vec::new();
    for (place, value) in values {
        let header: Header = match serde_yaml_ng::from_value(value.clone()) {
            Ok(h) => h,
            Err(e) => {
                loaded.errors.push(ConfigError::Yaml {
                    place,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let expected_version = if header.kind == "Secret" {
            "v1"
        } else {
            API_VERSION
        };
        if !matches!(
            header.kind.as_str(),
            "JobSource" | "MatchSubscription" | "Secret"
        ) {
            loaded.errors.push(ConfigError::UnknownKind {
                place,
                kind: header.kind,
            });
            continue;
        }
        if header.api_version != expected_version {
            loaded.errors.push(ConfigError::ApiVersion {
                place,
                kind: header.kind,
                found: header.api_version,
            });
            continue;
        }
        if header.kind == "Secret" {
            match secret_entries(&place, &header.metadata.name, value) {
                Ok(entries) => {
                    secrets.insert(header.metadata.name, entries);
                }
                Err(e) => loaded.errors.push(e),
            }
        } else {
            typed.push((place, header, value));
        }
    }

    for (place, header, value) in typed {
        let result = match header.kind.as_str() {
            "JobSource" => {
                source(&place, header.metadata.name, value).map(|s| loaded.sources.push(s))
            }
            _ => subscription(&place, header.metadata.name, value, &secrets)
                .map(|s| loaded.subscriptions.push(s)),
        };
        if let Err(e) = result {
            loaded.errors.push(e);
        }
    }
    loaded
}

fn invalid(
    place: &DocumentPlace,
    kind: &'static str,
    name: &str,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        place: place.clone(),
        kind,
        name: name.to_owned(),
        message: message.into(),
    }
}

fn spec<S: for<'de> Deserialize<'de>>(
    place: &DocumentPlace,
    kind: &'static str,
    name: &str,
    value: serde_yaml_ng::Value,
) -> Result<S, ConfigError> {
    serde_yaml_ng::from_value::<Document<S>>(value)
        .map(|d| d.spec)
        .map_err(|e| invalid(place, kind, name, format!("spec: {e}")))
}

fn source(
    place: &DocumentPlace,
    name: String,
    value: serde_yaml_ng::Value,
) -> Result<SourceConfig, ConfigError> {
    const KIND: &str = "JobSource";
    validate::check_name(&name).map_err(|e| invalid(place, KIND, &name, e.to_string()))?;
    let spec: JobSourceSpec = spec(place, KIND, &name, value)?;
    validate::source_config(&name, spec).map_err(|e| invalid(place, KIND, &name, e.to_string()))
}

/// Without a cluster there are no ConfigMaps: a resume comes inline or from a Secret
/// document in the same files.
fn subscription(
    place: &DocumentPlace,
    name: String,
    value: serde_yaml_ng::Value,
    secrets: &Secrets,
) -> Result<SubscriptionConfig, ConfigError> {
    const KIND: &str = "MatchSubscription";
    validate::check_name(&name).map_err(|e| invalid(place, KIND, &name, e.to_string()))?;
    let spec: MatchSubscriptionSpec = spec(place, KIND, &name, value)?;
    let lookup = |reference: Reference<'_>| match reference {
        Reference::Secret(r) => secrets.get(&r.name).and_then(|s| s.get(&r.key)).cloned(),
        Reference::ConfigMap(_) => None,
    };
    validate::subscription_config(&name, spec, lookup)
        .map_err(|e| invalid(place, KIND, &name, e.to_string()))
}

fn secret_entries(
    place: &DocumentPlace,
    name: &str,
    value: serde_yaml_ng::Value,
) -> Result<BTreeMap<String, String>, ConfigError> {
    use base64::Engine as _;
    let doc: SecretDocument = serde_yaml_ng::from_value(value)
        .map_err(|e| invalid(place, "Secret", name, e.to_string()))?;
    let mut entries = doc.string_data;
    for (key, encoded) in doc.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| {
                invalid(
                    place,
                    "Secret",
                    name,
                    format!("data.{key}: not base64 ({e})"),
                )
            })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| invalid(place, "Secret", name, format!("data.{key}: not UTF-8")))?;
        entries.entry(key).or_insert(text);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmatch_core::Channel;

    const EXAMPLE: &str = r#"
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: acme}
spec:
  board: {kind: greenhouse, token: acme}
  baseUrl: http://127.0.0.1:8089
  interval: 5m
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: ada}
spec:
  resume: {text: "Backend engineer, 6 years of Rust and Kubernetes"}
  criteria: {remote: allowed, locations: [Berlin], minScore: 0.35, mustNotHave: [php]}
  notify:
    email: {to: ada@example.com}
    schedule: instant
---
apiVersion: v1
kind: Secret
metadata: {name: slack}
stringData: {url: "http://127.0.0.1:9/hook"}
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: grace}
spec:
  resume: {text: "Data engineer"}
  notify:
    slack: {webhookSecretRef: {name: slack, key: url}}
"#;

    fn parse(text: &str) -> Loaded {
        parse_documents(&[(Path::new("test.yaml"), text)])
    }

    #[test]
    fn the_documented_example_loads() {
        let loaded = parse(EXAMPLE);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        assert_eq!(loaded.sources.len(), 1);
        assert_eq!(loaded.sources[0].spec.base_url(), "http://127.0.0.1:8089");
        let names: Vec<_> = loaded
            .subscriptions
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["ada", "grace"]);
        assert_eq!(loaded.subscriptions[0].criteria.must_not_have, ["php"]);
        // The secret is declared after nothing refers to it but before grace; order does not matter.
        assert_eq!(
            loaded.subscriptions[1].channel,
            Channel::Slack {
                webhook_url: "http://127.0.0.1:9/hook".into()
            }
        );
    }

    #[test]
    fn unknown_kind_is_named_and_others_still_load() {
        let text = format!(
            "{EXAMPLE}\n---\napiVersion: jobmatch.dev/v1alpha1\nkind: JobSorce\nmetadata: {{name: x}}\n"
        );
        let loaded = parse(&text);
        assert_eq!(loaded.sources.len(), 1);
        assert_eq!(loaded.subscriptions.len(), 2);
        assert_eq!(loaded.errors.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.contains("test.yaml#5") && message.contains("\"JobSorce\""),
            "{message}"
        );
    }

    #[test]
    fn invalid_email_names_the_field() {
        let text = EXAMPLE.replace("ada@example.com", "ada-at-example");
        let loaded = parse(&text);
        assert_eq!(loaded.subscriptions.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.contains("spec.notify.email.to") && message.contains("ada-at-example"),
            "{message}"
        );
        assert_eq!(loaded.errors[0].category(), "invalid");
    }

    #[test]
    fn missing_secret_and_bad_score_are_refused() {
        let text = EXAMPLE
            .replace("name: slack}", "name: slak}")
            .replace("minScore: 0.35", "minScore: 3.5");
        let loaded = parse(&text);
        assert_eq!(loaded.subscriptions.len(), 0);
        let messages: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains("minScore")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("webhookSecretRef")),
            "{messages:?}"
        );
    }

    #[test]
    fn misspelt_spec_field_and_bad_name_are_refused() {
        let loaded = parse(
            &EXAMPLE
                .replace("interval: 5m", "intervall: 5m")
                .replace("{name: grace}", "{name: Grace}"),
        );
        let messages: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|m| m.contains("intervall")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("metadata.name")),
            "{messages:?}"
        );
    }
}
