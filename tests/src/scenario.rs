//! The end-to-end scenario's parts, shared by the tests that run it: servers, the
//! rendered configuration, and what was delivered, as (subscription, posting id) pairs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use jobmatch_core::ids::kv_key;

use crate::boards::BoardServer;
use crate::fixture;
use crate::mail::read_maildir;
use crate::process::{JobmatchEnv, Nats, Smtp};
use crate::slack::SlackReceiver;

/// Thresholds sit in the widest gaps of the scores this model gives the fixtures
/// (each at least 0.03 from the nearest job; vectors are reproducible to ~1e-7).
pub const MIN_SCORES: [(&str, f32); 4] = [
    ("ADA_MIN", 0.465),
    ("GRACE_MIN", 0.55),
    ("LINUS_MIN", 0.54),
    ("MARGARET_MIN", 0.5),
];

/// Every (subscription, posting) that must be notified, and by implication every other
/// pair must not:
/// - ada (Rust backend, remote or Berlin, no PHP): not the Laravel job that mentions Rust
///   and Kubernetes (mustNotHave php), not the Rust jobs in Hamburg and Munich (location),
///   not the frontend or data jobs (score).
/// - grace (frontend, remote only, Slack): not the Munich frontend job (remote required).
/// - linus (ML in Paris, not remote): not the computer-vision job (score), nothing remote.
/// - margaret (must have kubernetes and terraform): only the three jobs naming both.
pub const EXPECTED: [(&str, &str); 15] = [
    ("ada", "greenhouse:acme:4012001"),
    ("ada", "greenhouse:acme:4012002"),
    ("ada", "greenhouse:acme:4012003"),
    ("ada", "greenhouse:acme:4012009"),
    ("ada", "lever:globex:a1b2c3d4-0001"),
    ("ada", "lever:globex:a1b2c3d4-0002"),
    ("ada", "lever:globex:a1b2c3d4-0007"),
    ("grace", "greenhouse:acme:4012004"),
    ("grace", "lever:globex:a1b2c3d4-0005"),
    ("linus", "greenhouse:acme:4012007"),
    ("linus", "greenhouse:acme:4012008"),
    ("linus", "lever:globex:a1b2c3d4-0004"),
    ("margaret", "greenhouse:acme:4012003"),
    ("margaret", "greenhouse:acme:4012009"),
    ("margaret", "lever:globex:a1b2c3d4-0007"),
];

/// [`EXPECTED`] as owned pairs.
pub fn expected() -> std::collections::BTreeSet<(String, String)> {
    EXPECTED
        .iter()
        .map(|(s, p)| (s.to_string(), p.to_string()))
        .collect()
}

pub struct Scenario {
    pub nats: Nats,
    pub smtp: Smtp,
    pub boards: BoardServer,
    pub slack: SlackReceiver,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub env: JobmatchEnv,
    /// Posting URL → posting id, from the fixtures.
    urls: HashMap<String, String>,
    /// kv_key(posting id) → posting id.
    keys: HashMap<String, String>,
}

/// A delivered notice: (subscription, posting id) → how many times.
pub type Deliveries = BTreeMap<(String, String), usize>;

impl Scenario {
    /// Starts the servers on loopback and writes the configuration with `min_scores`
    /// filled in.
    pub async fn start(min_scores: &[(&str, f32)]) -> Self {
        Self::start_on("127.0.0.1", min_scores).await
    }

    /// Like [`Scenario::start`], with the servers on `host` (an address of this machine:
    /// the cluster test's pods reach the host at the pod network's address).
    pub async fn start_on(host: &str, min_scores: &[(&str, f32)]) -> Self {
        let nats = Nats::start_on(host).await;
        let smtp = Smtp::start_on(host).await;
        let boards = BoardServer::start_on(host).await;
        let slack = SlackReceiver::start_on(host).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut text =
            std::fs::read_to_string(fixture("pipeline/config.yaml")).expect("scenario config");
        text = text
            .replace("${BOARD}", &boards.url)
            .replace("${SLACK}", &slack.url);
        for (name, score) in min_scores {
            text = text.replace(&format!("${{{name}}}"), &score.to_string());
        }
        assert!(
            !text.contains("${"),
            "unfilled placeholder in the scenario config"
        );
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, text).expect("write config");
        let env = JobmatchEnv {
            nats_url: nats.url.clone(),
            smtp_url: Some(smtp.url.clone()),
            data_dir: dir.path().join("data"),
        };

        let mut urls = HashMap::new();
        let gh: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture("boards/greenhouse-acme.json")).expect("fixture"),
        )
        .expect("json");
        for job in gh["jobs"].as_array().expect("jobs") {
            urls.insert(
                job["absolute_url"].as_str().expect("url").to_owned(),
                format!("greenhouse:acme:{}", job["id"]),
            );
        }
        let lv: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture("boards/lever-globex.json")).expect("fixture"),
        )
        .expect("json");
        for p in lv.as_array().expect("postings") {
            urls.insert(
                p["hostedUrl"].as_str().expect("url").to_owned(),
                format!("lever:globex:{}", p["id"].as_str().expect("id")),
            );
        }
        let keys = urls.values().map(|id| (kv_key(id), id.clone())).collect();
        Self {
            nats,
            smtp,
            boards,
            slack,
            dir,
            config,
            env,
            urls,
            keys,
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn config_arg(&self) -> String {
        self.config.display().to_string()
    }

    /// Every notice delivered so far, by email and by Slack.
    pub fn deliveries(&self) -> Deliveries {
        let mut out = Deliveries::new();
        for mail in read_maildir(&self.smtp.maildir) {
            let key = mail.header("x-jobmatch-notice").unwrap_or_default();
            let (subscription, digest) = key.split_once('.').unwrap_or((key, ""));
            let posting = self
                .keys
                .get(digest)
                .cloned()
                .unwrap_or_else(|| format!("unknown:{key}"));
            *out.entry((subscription.to_owned(), posting)).or_default() += 1;
        }
        for (channel, body) in self.slack.messages() {
            let text = body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or_default();
            let url = text
                .trim_start_matches("*<")
                .split('|')
                .next()
                .unwrap_or_default();
            let posting = self
                .urls
                .get(url)
                .cloned()
                .unwrap_or_else(|| format!("unknown:{url}"));
            // Slack webhooks in the scenario are per subscription: `frontend` is grace's.
            let subscription = if channel == "frontend" {
                "grace".to_owned()
            } else {
                channel
            };
            *out.entry((subscription, posting)).or_default() += 1;
        }
        out
    }

    pub fn delivered_count(&self) -> usize {
        self.deliveries().values().sum()
    }

    /// The jobmatch logs of this scenario, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(60).collect();
                    out.push_str(&format!("==> {} (last lines)\n", path.display()));
                    for line in tail.into_iter().rev() {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}
