//! The operator's configuration: command-line flags, each also read from the environment
//! (the Helm chart sets the environment).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

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
    /// NATS monitoring endpoint (host:port) KEDA reads consumer lag from.
    #[arg(
        long,
        env = "JOBMATCH_NATS_MONITORING_ENDPOINT",
        default_value = "nats.default.svc:8222"
    )]
    pub nats_monitoring_endpoint: String,
    /// Qdrant gRPC URL; without it matchers use the embedded store (one replica).
    #[arg(long, env = "JOBMATCH_QDRANT_URL")]
    pub qdrant_url: Option<String>,
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
    /// Run the embedder on GPU nodes (`nvidia.com/gpu: 1`).
    #[arg(long, env = "JOBMATCH_GPU", default_value_t = false)]
    pub gpu: bool,
    /// Node selector for GPU embedders, `key=value,...`.
    #[arg(long, env = "JOBMATCH_GPU_NODE_SELECTOR", default_value = "nvidia.com/gpu.present=true", value_parser = crate::fleet::parse_node_selector)]
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
    /// Consumer lag (messages) one embedder or matcher replica is expected to absorb.
    #[arg(long, env = "JOBMATCH_LAG_PER_REPLICA", default_value_t = 100)]
    pub lag_per_replica: u64,
}

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
