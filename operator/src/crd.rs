//! The custom resources: `JobSource` and `MatchSubscription` (`jobmatch.dev/v1alpha1`).
//!
//! The specs are the shared domain types of `jobmatch-core`, so a field means the same in
//! a CR, a YAML file for `jobmatch all`, and a message. The schema carries the enums,
//! patterns and bounds, so the API server itself refuses a bad resource by field.

use jobmatch_core::{JobSourceSpec, MatchSubscriptionSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A job board to poll: which board, how often, which postings to keep.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jobmatch.dev",
    version = "v1alpha1",
    kind = "JobSource",
    namespaced,
    status = "JobSourceStatus",
    shortname = "jsrc",
    category = "jobmatch",
    printcolumn = r#"{"name":"Board","type":"string","jsonPath":".spec.board.kind"}"#,
    printcolumn = r#"{"name":"Interval","type":"string","jsonPath":".spec.interval"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Postings","type":"integer","jsonPath":".status.postingsSeen"}"#,
    printcolumn = r#"{"name":"Last Poll","type":"date","jsonPath":".status.lastPoll"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct JobSourceCrdSpec(pub JobSourceSpec);

/// A resume, what counts as a match for it, and where to send the matches.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "jobmatch.dev",
    version = "v1alpha1",
    kind = "MatchSubscription",
    namespaced,
    status = "MatchSubscriptionStatus",
    shortname = "msub",
    category = "jobmatch",
    printcolumn = r#"{"name":"Min Score","type":"number","jsonPath":".spec.criteria.minScore"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Matches","type":"integer","jsonPath":".status.matches"}"#,
    printcolumn = r#"{"name":"Sent","type":"integer","jsonPath":".status.noticesSent"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct MatchSubscriptionCrdSpec(pub MatchSubscriptionSpec);

/// A condition in the usual Kubernetes shape. Only `Ready` is used today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word: why the condition is what it is.
    pub reason: String,
    pub message: String,
    /// RFC 3339; changes only when `status` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What the operator and the fetchers report about a `JobSource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSourceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Postings the board listed (after `titleIncludes`) at the last successful poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postings_seen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<String>,
    /// The latest error: the HTTP status, or the parse error and where it occurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The HTTP status of the board's last answer (304: unchanged since the poll before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    /// What the last poll that read the board found: new, updated, unchanged, closed,
    /// duplicates, reposts, malformed, filtered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_counts: Option<jobmatch_core::messages::PollCounts>,
    /// Malformed postings skipped over all polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_total: Option<u64>,
}

/// What the operator and the workers report about a `MatchSubscription`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchSubscriptionStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Matches found for this subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<u64>,
    /// Notices delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notices_sent: Option<u64>,
    /// Notices that failed every attempt and went to the dead-letter stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notices_failed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Both CRDs, in the order `kubectl apply -f crds/` should see them.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut source = JobSource::crd();
    let mut subscription = MatchSubscription::crd();
    // Rules across fields, which schemars cannot derive from the serde types. Only
    // `required` and `enum` inside `oneOf`/`not`, as structural schemas demand.
    constrain(&mut source, &["spec", "board"], board_rules());
    constrain(
        &mut subscription,
        &["spec", "resume"],
        serde_json::json!([
            {"required": ["text"]}, {"required": ["configMapKeyRef"]}, {"required": ["secretKeyRef"]},
        ]),
    );
    constrain(
        &mut subscription,
        &["spec", "notify"],
        serde_json::json!([
            {"required": ["email"]}, {"required": ["slack"]},
        ]),
    );
    vec![source, subscription]
}

/// One `oneOf` branch per board kind: its required fields, and none of the fields
/// that belong only to other kinds.
fn board_rules() -> serde_json::Value {
    use jobmatch_core::source::{BOARD_FIELDS, BOARD_KINDS};
    BOARD_KINDS
        .iter()
        .map(|k| {
            let foreign: Vec<serde_json::Value> = BOARD_FIELDS
                .iter()
                .filter(|f| !k.required.contains(f) && !k.optional.contains(f))
                .map(|f| serde_json::json!({"required": [f]}))
                .collect();
            let mut rule = serde_json::json!({"properties": {"kind": {"enum": [k.kind]}}});
            if !k.required.is_empty() {
                rule["required"] = serde_json::json!(k.required);
            }
            if !foreign.is_empty() {
                rule["not"] = serde_json::json!({"anyOf": foreign});
            }
            rule
        })
        .collect()
}

/// Sets `oneOf` on the schema of the field at `path` (from the root of the object).
fn constrain(crd: &mut CustomResourceDefinition, path: &[&str], one_of: serde_json::Value) {
    let Some(schema) = crd
        .spec
        .versions
        .first_mut()
        .and_then(|v| v.schema.as_mut())
        .and_then(|s| s.open_api_v3_schema.as_mut())
    else {
        return;
    };
    let mut node = schema;
    for key in path {
        match node.properties.as_mut().and_then(|p| p.get_mut(*key)) {
            Some(child) => node = child,
            None => return,
        }
    }
    node.one_of = serde_json::from_value(one_of).ok();
}

/// The CRDs as one multi-document YAML file: what `jobmatch-operator crds` prints and
/// `crds/jobmatch.dev.yaml` holds.
pub fn yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::from(
        "# Generated by `jobmatch-operator crds`; do not edit (a test fails when it is stale).\n",
    );
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/jobmatch.dev.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        let generated = yaml().unwrap();
        assert!(
            committed == generated,
            "crds/jobmatch.dev.yaml is stale: run `cargo run -p jobmatch-operator -- crds > crds/jobmatch.dev.yaml`"
        );
    }

    #[test]
    fn schema_is_structural_without_one_of_properties() {
        // The API server refuses types and new fields inside `oneOf` branches: everything
        // must be declared at the level it lives on.
        fn walk(v: &serde_json::Value, in_one_of: bool, path: &str) {
            match v {
                serde_json::Value::Object(map) => {
                    if in_one_of {
                        assert!(
                            !map.contains_key("description"),
                            "{path}: description in oneOf"
                        );
                        assert!(!map.contains_key("type"), "{path}: type in oneOf");
                    }
                    for (k, child) in map {
                        let nested = in_one_of || k == "oneOf" || k == "anyOf";
                        walk(child, nested, &format!("{path}.{k}"));
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(child, in_one_of, &format!("{path}[{i}]"));
                    }
                }
                _ => {}
            }
        }
        for crd in all() {
            walk(
                &serde_json::to_value(&crd).unwrap(),
                false,
                &crd.spec.names.kind,
            );
        }
    }

    #[test]
    fn board_kind_is_an_enum_in_the_schema() {
        let crd = serde_json::to_value(JobSource::crd()).unwrap();
        let kind = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["board"]["properties"]["kind"];
        assert_eq!(
            kind["enum"],
            serde_json::json!([
                "greenhouse",
                "lever",
                "ashby",
                "smartrecruiters",
                "workable",
                "remoteok",
                "remotive",
                "arbeitnow",
                "hackernews",
                "feed",
                "careerpage"
            ]),
            "{kind}"
        );
    }
}
