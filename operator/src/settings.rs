//! The operator's configuration: command-line flags, each also read from the environment
//! (the Helm chart sets the environment), and the parsers of their values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jobmatch_core::Role;
use serde_json::Value;

/// A key of a Secret in the operator's namespace, given as `NAME/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    pub name: String,
    pub key: String,
}

/// What shapes the worker fleet.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct FleetSettings {
    /// Worker image (CPU).
    #[arg(
        long,
        env = "JOBMATCH_WORKER_IMAGE",
        default_value = "jobmatch/worker:0.1.0"
    )]
    pub image: String,
    /// When the kubelet pulls the worker images: `Always`, `IfNotPresent` or `Never`.
    #[arg(
        long,
        env = "JOBMATCH_WORKER_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent",
        value_parser = ["Always", "IfNotPresent", "Never"]
    )]
    pub image_pull_policy: String,
    /// Worker image built with CUDA, used by the embedder when `--gpu` is set.
    #[arg(
        long,
        env = "JOBMATCH_WORKER_GPU_IMAGE",
        default_value = "jobmatch/worker-cuda:0.1.0"
    )]
    pub gpu_image: String,
    /// NATS URL the workers connect to.
    #[arg(
        id = "worker_nats_url",
        long = "worker-nats-url",
        env = "JOBMATCH_WORKER_NATS_URL",
        default_value = "nats://nats:4222"
    )]
    pub nats_url: String,
    /// NATS monitoring endpoint (host:port) KEDA reads consumer lag from; by default the
    /// host of `--worker-nats-url` on port 8222 (NATS's monitoring port).
    #[arg(long, env = "JOBMATCH_NATS_MONITORING_ENDPOINT")]
    pub nats_monitoring_endpoint: Option<String>,
    /// Secret key (`NAME/KEY`) holding the workers' NATS credentials file (`.creds`).
    #[arg(long, env = "JOBMATCH_WORKER_NATS_CREDENTIALS_SECRET", value_parser = parse_secret_key)]
    pub nats_credentials_secret: Option<SecretKey>,
    /// Secret key (`NAME/KEY`) holding the CA certificate (PEM) of NATS's TLS.
    #[arg(long, env = "JOBMATCH_WORKER_NATS_CA_SECRET", value_parser = parse_secret_key)]
    pub nats_ca_secret: Option<SecretKey>,
    /// Qdrant gRPC URL (`https://` for TLS); without it the matcher uses the embedded
    /// store, one replica on `--matcher-claim`.
    #[arg(long, env = "JOBMATCH_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// Secret key (`NAME/KEY`) holding Qdrant's API key.
    #[arg(long, env = "JOBMATCH_QDRANT_API_KEY_SECRET", value_parser = parse_secret_key)]
    pub qdrant_api_key_secret: Option<SecretKey>,
    /// Secret key (`NAME/KEY`) holding the CA bundle (PEM) the matcher trusts for
    /// Qdrant's TLS (it replaces the system roots in the matcher).
    #[arg(long, env = "JOBMATCH_QDRANT_CA_SECRET", value_parser = parse_secret_key)]
    pub qdrant_ca_secret: Option<SecretKey>,
    /// PersistentVolumeClaim the matcher keeps the embedded store on, so that a new pod
    /// finds the stored jobs. Without it (and without Qdrant) the store is an emptyDir and
    /// is lost with the pod.
    #[arg(long, env = "JOBMATCH_MATCHER_CLAIM")]
    pub matcher_claim: Option<String>,
    /// Model directory inside the worker image.
    #[arg(
        long,
        env = "JOBMATCH_WORKER_MODEL_DIR",
        default_value = "/models/all-MiniLM-L6-v2"
    )]
    pub model_dir: String,
    /// Secret with key `url` (smtp://user:pass@host:587) for the notifiers.
    #[arg(long, env = "JOBMATCH_SMTP_SECRET", default_value = "jobmatch-smtp")]
    pub smtp_secret: String,
    /// Sender address of notice emails.
    #[arg(long, env = "JOBMATCH_SMTP_FROM", default_value = "jobmatch@localhost")]
    pub smtp_from: String,
    /// Secret key (`NAME/KEY`) holding CA certificates (PEM) the SMTP server's TLS
    /// certificate may chain to, besides the public roots (a relay with a private CA).
    #[arg(long, env = "JOBMATCH_WORKER_SMTP_CA_SECRET", value_parser = parse_secret_key)]
    pub smtp_ca_secret: Option<SecretKey>,
    /// Run the embedder on GPU nodes (`nvidia.com/gpu`).
    #[arg(long, env = "JOBMATCH_GPU", default_value_t = false, action = clap::ArgAction::Set)]
    pub gpu: bool,
    /// GPUs each embedder requests (and is limited to).
    #[arg(long, env = "JOBMATCH_GPU_COUNT", default_value_t = 1)]
    pub gpu_count: u32,
    /// Node selector for GPU embedders, `key=value,...`.
    #[arg(long, env = "JOBMATCH_GPU_NODE_SELECTOR", default_value = "nvidia.com/gpu.present=true", value_parser = parse_node_selector)]
    pub gpu_node_selector: BTreeMap<String, String>,
    /// Taint keys GPU embedders tolerate (NoSchedule), comma-separated.
    #[arg(
        long,
        env = "JOBMATCH_GPU_TOLERATIONS",
        default_value = "nvidia.com/gpu",
        value_delimiter = ','
    )]
    pub gpu_tolerations: Vec<String>,
    /// How many sources one fetcher replica polls.
    #[arg(long, env = "JOBMATCH_SOURCES_PER_FETCHER", default_value_t = 25)]
    pub sources_per_fetcher: usize,
    #[arg(long, env = "JOBMATCH_MAX_FETCHERS", default_value_t = 10)]
    pub max_fetchers: i32,
    #[arg(long, env = "JOBMATCH_MAX_EMBEDDERS", default_value_t = 8)]
    pub max_embedders: i32,
    #[arg(long, env = "JOBMATCH_MAX_MATCHERS", default_value_t = 4)]
    pub max_matchers: i32,
    #[arg(long, env = "JOBMATCH_NOTIFIERS", default_value_t = 1)]
    pub notifiers: i32,
    /// Replicas of the API gateway (stateless).
    #[arg(long, env = "JOBMATCH_API_REPLICAS", default_value_t = 2)]
    pub api_replicas: i32,
    /// Secret key (`NAME/KEY`) holding the API's bearer tokens (one per line, each
    /// optionally followed by `read` or `write`), mounted on the api and the embedders.
    /// Unset: the API refuses every request.
    #[arg(long, env = "JOBMATCH_WORKER_API_TOKENS_SECRET", value_parser = parse_secret_key)]
    pub api_tokens_secret: Option<SecretKey>,
    /// Reads (embedding, searches) need no token; writes still do.
    #[arg(long, env = "JOBMATCH_API_PUBLIC_READS", default_value_t = false, action = clap::ArgAction::Set)]
    pub api_public_reads: bool,
    /// Consumer lag (messages) one embedder or matcher replica is expected to absorb.
    #[arg(long, env = "JOBMATCH_LAG_PER_REPLICA", default_value_t = 100)]
    pub lag_per_replica: u64,
    /// Resources per role, as JSON: `{"embedder": {"requests": {"cpu": "1"}, "limits":
    /// {"memory": "1Gi"}}, ...}`. A role named here gets exactly these; the others keep
    /// the defaults.
    #[arg(long, env = "JOBMATCH_WORKER_RESOURCES", default_value = "{}", value_parser = parse_resources)]
    pub resources: RoleResources,
    /// The stream and bucket limits set in the operator's environment
    /// (`JOBMATCH_BUS_*`), passed on to every worker so all processes set up the same
    /// layout.
    #[arg(skip)]
    pub bus_env: Vec<(String, String)>,
}

/// The `JOBMATCH_BUS_*` variables of this process, validated.
pub fn bus_env() -> Result<Vec<(String, String)>, jobmatch_bus::LimitsError> {
    jobmatch_bus::BusLimits::from_env()?;
    Ok(jobmatch_bus::limits::ENV_VARS
        .iter()
        .filter_map(|var| std::env::var(var).ok().map(|v| (var.to_string(), v)))
        .collect())
}

/// Resource requirements (`requests`, `limits`) by role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleResources(pub BTreeMap<Role, Value>);

/// How the scalers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoscalerChoice {
    /// KEDA when its CRD is installed, else an HPA.
    Auto,
    Keda,
    Hpa,
}

#[derive(Debug, Clone, clap::Args)]
pub struct OperatorSettings {
    /// Namespace whose resources this operator reconciles and where the fleet runs.
    #[arg(long, env = "JOBMATCH_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// NATS URL the operator writes the workers' configuration to.
    #[arg(
        long,
        env = "JOBMATCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS credentials file (`.creds`) of the operator.
    #[arg(long, env = "JOBMATCH_NATS_CREDS")]
    pub nats_credentials: Option<PathBuf>,
    /// CA certificate (PEM) of NATS's TLS; setting it requires TLS.
    #[arg(long, env = "JOBMATCH_NATS_CA")]
    pub nats_ca: Option<PathBuf>,
    /// The Deployment running this operator: the fleet's owner, so uninstalling removes it.
    #[arg(long, env = "JOBMATCH_OWNER_DEPLOYMENT")]
    pub owner_deployment: Option<String>,
    #[arg(long, env = "JOBMATCH_AUTOSCALER", value_enum, default_value = "auto")]
    pub autoscaler: AutoscalerChoice,
    /// Take a Lease before reconciling, so several replicas are safe.
    #[arg(long, env = "JOBMATCH_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How often worker reports are copied into status (at most).
    #[arg(long, env = "JOBMATCH_STATUS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub status_interval: Duration,
    /// Reconciles of each kind running at once. Bounds memory and the request rate the
    /// API server sees; unbounded, a cold start over thousands of resources floods it.
    #[arg(long, env = "JOBMATCH_MAX_CONCURRENT_RECONCILES", default_value_t = 16)]
    pub max_concurrent_reconciles: u16,
    /// Address for /metrics, /health and /ready.
    #[arg(long, env = "JOBMATCH_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub fleet: FleetSettings,
}

/// `NAME/KEY` of a Secret key.
pub fn parse_secret_key(text: &str) -> Result<SecretKey, String> {
    match text.split_once('/') {
        Some((name, key)) if !name.trim().is_empty() && !key.trim().is_empty() => Ok(SecretKey {
            name: name.trim().to_owned(),
            key: key.trim().to_owned(),
        }),
        _ => Err(format!(
            "{text:?} is not NAME/KEY (a Secret and one of its keys)"
        )),
    }
}

/// Node selector `key=value,key=value` from the command line.
pub fn parse_node_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("{pair:?} is not key=value"))
        })
        .collect()
}

/// Resources by role name from JSON; unknown roles and fields other than `requests` and
/// `limits` are refused, so a typo in the chart's values fails the operator's start.
pub fn parse_resources(text: &str) -> Result<RoleResources, String> {
    let by_name: BTreeMap<String, Value> =
        serde_json::from_str(if text.trim().is_empty() { "{}" } else { text })
            .map_err(|e| format!("resources: {e}"))?;
    let mut resources = BTreeMap::new();
    for (name, value) in by_name {
        let role = Role::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                format!("resources.{name}: not a role (fetcher, embedder, matcher, notifier)")
            })?;
        let Value::Object(fields) = &value else {
            return Err(format!(
                "resources.{name}: expected an object with requests and limits"
            ));
        };
        if let Some(other) = fields.keys().find(|k| *k != "requests" && *k != "limits") {
            return Err(format!(
                "resources.{name}.{other}: only requests and limits are allowed"
            ));
        }
        resources.insert(role, value);
    }
    Ok(RoleResources(resources))
}

impl FleetSettings {
    /// Defaults as the command line gives them, with small bounds for unit tests.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            fleet: FleetSettings,
        }
        let mut s = Cli::parse_from(["test"]).fleet;
        s.max_fetchers = 4;
        s.max_embedders = 3;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_parse_as_name_slash_key() {
        assert_eq!(
            parse_secret_key("nats-creds/user.creds").unwrap(),
            SecretKey {
                name: "nats-creds".into(),
                key: "user.creds".into()
            }
        );
        assert!(parse_secret_key("nats-creds").is_err());
        assert!(parse_secret_key("/key").is_err());
    }

    #[test]
    fn node_selector_parses_pairs() {
        assert_eq!(
            parse_node_selector("a=b, c=d").unwrap(),
            BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())])
        );
        assert!(parse_node_selector("nope").is_err());
    }

    #[test]
    fn resources_are_keyed_by_role_and_typos_are_refused() {
        let r = parse_resources(r#"{"embedder": {"requests": {"cpu": "2"}}}"#).unwrap();
        assert_eq!(r.0[&Role::Embedder]["requests"]["cpu"], "2");
        assert_eq!(parse_resources("").unwrap(), RoleResources::default());
        let e = parse_resources(r#"{"embeder": {}}"#).unwrap_err();
        assert!(e.contains("resources.embeder"), "{e}");
        let e = parse_resources(r#"{"matcher": {"request": {}}}"#).unwrap_err();
        assert!(e.contains("resources.matcher.request"), "{e}");
        assert!(parse_resources(r#"{"matcher": 3}"#).is_err());
    }
}
