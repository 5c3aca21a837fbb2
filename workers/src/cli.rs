//! Command-line interface: every flag has an environment fallback (`JOBMATCH_*`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "jobmatch",
    version,
    about = "Match job postings to resumes and tell people about them"
)]
pub struct Cli {
    #[command(flatten)]
    pub connections: Connections,
    /// Log format: `text` or `json`.
    #[arg(
        long,
        env = "JOBMATCH_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the parts of the system are.
#[derive(Debug, Clone, Args)]
pub struct Connections {
    /// NATS server with JetStream.
    #[arg(
        long,
        env = "JOBMATCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats_url: String,
    /// NATS credentials file (`.creds`).
    #[arg(long, env = "JOBMATCH_NATS_CREDS", global = true)]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) of NATS's TLS; setting it requires TLS.
    #[arg(long, env = "JOBMATCH_NATS_CA", global = true)]
    pub nats_ca: Option<PathBuf>,
    /// SMTP server for email notices, e.g. `smtp://127.0.0.1:2525` or `smtps://user:pass@host`.
    #[arg(long, env = "JOBMATCH_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// CA certificates (PEM) the SMTP server's TLS certificate may chain to, besides the
    /// public roots (a relay with a private CA).
    #[arg(long, env = "JOBMATCH_SMTP_CA", global = true)]
    pub smtp_ca: Option<PathBuf>,
    /// Sender of email notices.
    #[arg(
        long,
        env = "JOBMATCH_SMTP_FROM",
        default_value = "jobmatch <jobmatch@localhost>",
        global = true
    )]
    pub smtp_from: String,
    /// A sentence-transformers model directory (config.json, tokenizer.json, model.safetensors).
    #[arg(
        long,
        env = "JOBMATCH_MODEL_DIR",
        default_value = ".cache/models/all-MiniLM-L6-v2",
        global = true
    )]
    pub model_dir: PathBuf,
    #[command(flatten)]
    pub embedding: EmbedSettings,
    /// Qdrant gRPC URL (e.g. `http://qdrant:6334`); unset uses the embedded store.
    #[arg(long, env = "JOBMATCH_QDRANT_URL", global = true)]
    pub qdrant_url: Option<String>,
    /// Qdrant API key.
    #[arg(
        long,
        env = "JOBMATCH_QDRANT_API_KEY",
        global = true,
        hide_env_values = true
    )]
    pub qdrant_api_key: Option<String>,
    /// Where the embedded vector store keeps its data.
    #[arg(
        long,
        env = "JOBMATCH_DATA_DIR",
        default_value = ".jobmatch-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Serve `/health`, `/ready` and `/metrics` on this address (e.g. `0.0.0.0:9090`).
    #[arg(long, env = "JOBMATCH_LISTEN", global = true)]
    pub listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub api: ApiSettings,
    /// Timeout of one board request.
    #[arg(long, env = "JOBMATCH_HTTP_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub http_timeout: Duration,
    /// Requests per second to one board host, per process (a token bucket).
    #[arg(long, env = "JOBMATCH_HOST_RATE", default_value = "2", global = true)]
    pub host_rate: std::num::NonZeroU32,
    /// Requests to one host that may go at once after a quiet spell.
    #[arg(long, env = "JOBMATCH_HOST_BURST", default_value = "4", global = true)]
    pub host_burst: std::num::NonZeroU32,
    /// Attempts per notice (one per delivery) before it is dead-lettered; at most the
    /// consumer's 8.
    #[arg(
        long,
        env = "JOBMATCH_NOTIFY_ATTEMPTS",
        default_value_t = jobmatch_core::messages::NOTIFIER_CONSUMER.attempts,
        global = true
    )]
    pub notify_attempts: u32,
    /// Notices sent at once (one SMTP connection each); one subscription's go in order.
    #[arg(
        long,
        env = "JOBMATCH_NOTIFY_CONCURRENCY",
        default_value_t = 16,
        global = true
    )]
    pub notify_concurrency: u16,
    /// The longest one email or Slack send may take (at most 40s).
    #[arg(long, env = "JOBMATCH_NOTIFY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub notify_timeout: Duration,
    /// Wait before the first redelivery of a failed notice; doubles each time, up to 5 min.
    #[arg(long, env = "JOBMATCH_NOTIFY_BACKOFF", default_value = "2s", value_parser = humantime::parse_duration, global = true)]
    pub notify_backoff: Duration,
}

/// How the embedder runs: precision, batching and back-pressure.
#[derive(Debug, Clone, Args)]
pub struct EmbedSettings {
    /// Arithmetic of the embedding model: `auto` (bf16 on a CPU with AVX-512 BF16, else
    /// f32), `f32` (full precision), `bf16`, or `f16` (GPU only).
    #[arg(
        long,
        env = "JOBMATCH_EMBED_PRECISION",
        value_enum,
        default_value_t = crate::embed::Precision::Auto,
        global = true
    )]
    pub precision: crate::embed::Precision,
    /// Code that runs the model on CPU: `auto` (jobmatch's AVX-512 kernels where the CPU
    /// has AVX-512) or `candle` (candle's ops only).
    #[arg(
        long,
        env = "JOBMATCH_EMBED_KERNELS",
        value_enum,
        default_value_t = crate::embed::Kernels::Auto,
        global = true
    )]
    pub embed_kernels: crate::embed::Kernels,
    /// Most texts in one forward pass.
    #[arg(
        long,
        env = "JOBMATCH_EMBED_MAX_BATCH_TEXTS",
        default_value_t = 32,
        global = true
    )]
    pub embed_max_batch_texts: usize,
    /// Most tokens in one forward pass. 4096 keeps the embedder under 300 MiB with
    /// MiniLM; twice that gains about 3 % of throughput for 50 MiB more.
    #[arg(
        long,
        env = "JOBMATCH_EMBED_MAX_BATCH_TOKENS",
        default_value_t = 4096,
        global = true
    )]
    pub embed_max_batch_tokens: usize,
    /// Most texts queued or being embedded; past it the API answers 429 and the NATS
    /// role waits.
    #[arg(
        long,
        env = "JOBMATCH_EMBED_QUEUE",
        default_value_t = 1024,
        global = true
    )]
    pub embed_queue: usize,
    /// Most texts in one API request.
    #[arg(
        long,
        env = "JOBMATCH_EMBED_MAX_INPUTS",
        default_value_t = 256,
        global = true
    )]
    pub embed_max_inputs: usize,
}

/// The REST API's access and limits.
#[derive(Debug, Clone, Args)]
pub struct ApiSettings {
    /// A file of bearer tokens, one per line, each optionally followed by its scope
    /// (`read` or `write`, default `write`). Without it the API is open on a loopback
    /// listener and refused on any other.
    #[arg(long, env = "JOBMATCH_API_TOKENS", global = true)]
    pub api_tokens: Option<PathBuf>,
    /// Reads (embedding, searches) need no token; writes still do.
    #[arg(long, env = "JOBMATCH_API_PUBLIC_READS", global = true)]
    pub api_public_reads: bool,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "JOBMATCH_API_MAX_BODY_BYTES", default_value_t = 4 << 20, global = true)]
    pub api_max_body_bytes: usize,
    /// Longest text of any field in bytes (422 beyond).
    #[arg(long, env = "JOBMATCH_API_MAX_TEXT_BYTES", default_value_t = 64 << 10, global = true)]
    pub api_max_text_bytes: usize,
    /// Requests served at once; more are answered 503 with `Retry-After`.
    #[arg(
        long,
        env = "JOBMATCH_API_MAX_CONCURRENT",
        default_value_t = 128,
        global = true
    )]
    pub api_max_concurrent: usize,
    /// The longest one API request may take (504 beyond).
    #[arg(long, env = "JOBMATCH_API_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, global = true)]
    pub api_timeout: Duration,
}

impl EmbedSettings {
    pub fn batcher(&self) -> crate::embed::BatcherConfig {
        crate::embed::BatcherConfig {
            max_batch_texts: self.embed_max_batch_texts,
            max_batch_tokens: self.embed_max_batch_tokens,
            max_queued_texts: self.embed_queue,
        }
    }

    /// The model's own batch shaping (padded tokens) follows the queue's.
    pub fn model_limits(&self) -> crate::embed::model::BatchLimits {
        crate::embed::model::BatchLimits {
            max_texts: self.embed_max_batch_texts.max(1),
            max_tokens: self.embed_max_batch_tokens.max(1),
        }
    }
}

impl Connections {
    /// The API's limits.
    pub fn api_limits(&self) -> crate::api::Limits {
        crate::api::Limits {
            max_body_bytes: self.api.api_max_body_bytes.max(1),
            max_inputs: self.embedding.embed_max_inputs.max(1),
            max_text_bytes: self.api.api_max_text_bytes.max(1),
            max_concurrent: self.api.api_max_concurrent.max(1),
            timeout: self.api.api_timeout,
        }
    }

    /// How the notifier sends and retries.
    pub fn notifier_settings(&self) -> crate::notify::role::NotifierSettings {
        let spec = jobmatch_core::messages::NOTIFIER_CONSUMER;
        crate::notify::role::NotifierSettings {
            lanes: usize::from(self.notify_concurrency.max(1)),
            retry: jobmatch_core::messages::ConsumerSpec {
                attempts: self.notify_attempts.clamp(1, spec.attempts),
                retry_first_ms: self.notify_backoff.as_millis().max(1) as u64,
                ..spec
            },
        }
    }

    /// Where NATS is, with its credentials.
    pub fn nats(&self) -> crate::bus::NatsConnection {
        crate::bus::NatsConnection {
            url: self.nats_url.clone(),
            credentials: self.nats_creds.clone(),
            ca: self.nats_ca.clone(),
        }
    }

    /// How the fetcher treats board hosts.
    pub fn politeness(&self) -> crate::fetch::http::Politeness {
        crate::fetch::http::Politeness {
            per_host_per_second: self.host_rate,
            burst: self.host_burst,
            ..Default::default()
        }
    }
}

/// Configuration files to apply before starting.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigFiles {
    /// YAML file or directory of JobSource / MatchSubscription / Secret documents (repeatable).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process.
    All(ConfigFiles),
    /// Poll job boards and publish postings.
    Fetcher(ConfigFiles),
    /// Embed postings and resumes.
    Embedder(ConfigFiles),
    /// Match postings and subscriptions.
    Matcher(ConfigFiles),
    /// Send notices.
    Notifier(ConfigFiles),
    /// Serve the REST API (needs --listen): stateless, the other roles answer it.
    Api(ConfigFiles),
    /// Write JobSource and MatchSubscription documents to the configuration bucket.
    Apply(ConfigFiles),
    /// Embed texts from stdin (a JSON string or {"text": ...} per line); one JSON array per line out.
    Embed,
    /// Poll each JobSource in the files once and print its postings as JSON lines.
    Fetch(ConfigFiles),
    /// List, redrive or purge what a stage gave up on (DEAD_LETTERS).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Show what the pipeline has done: postings, vectors, matches, notices.
    Report {
        /// Print a progress line until the pipeline is idle, then the matches.
        #[arg(long)]
        wait_idle: bool,
        /// Give up waiting after this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// Which dead letters a `dead-letters` command acts on.
#[derive(Debug, Clone, Args)]
pub struct DeadLetterSelection {
    /// Only this stage's: `embedder`, `matcher` or `notifier`.
    #[arg(long)]
    pub stage: Option<String>,
    /// Only the dead letter with this sequence (as `list` prints it); repeatable.
    #[arg(long = "sequence")]
    pub sequence: Vec<u64>,
    /// Every dead letter selected by `--stage` (required without `--sequence`).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// Print each dead letter: sequence, stage, original subject, time, deliveries, reason.
    List {
        #[command(flatten)]
        selection: DeadLetterSelection,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Send dead letters back to the subject they came from (their stage tries again).
    Redrive {
        #[command(flatten)]
        selection: DeadLetterSelection,
    },
    /// Delete dead letters for good.
    Purge {
        #[command(flatten)]
        selection: DeadLetterSelection,
    },
}

/// The long-running roles, named once in `jobmatch_core` (the operator uses them too).
pub use jobmatch_core::Role;
