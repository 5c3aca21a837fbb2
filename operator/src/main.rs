//! `jobmatch-operator`: `run` (the default) reconciles; `crds` prints the CRDs.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jobmatch_operator::config_plane::NatsConfigPlane;
use jobmatch_operator::metrics::Metrics;
use jobmatch_operator::settings::OperatorSettings;
use jobmatch_operator::{controller, crd, leader};

#[derive(Parser)]
#[command(
    name = "jobmatch-operator",
    version,
    about = "jobmatch's Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: OperatorSettings,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile JobSources and MatchSubscriptions (the default).
    Run,
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Crds => {
            print!("{}", crd::yaml()?);
            Ok(())
        }
        Command::Run => {
            init_tracing();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(run(cli.settings))
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("JOBMATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,kube_runtime=warn,kube_lease_manager=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("JOBMATCH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(settings: OperatorSettings) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    serve_http(settings.listen, metrics.clone(), ready.clone()).await?;

    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let plane = NatsConfigPlane::connect(&settings.nats_url).await?;

    let lease = if settings.leader_elect {
        let identity = std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("jobmatch-operator-{}", std::process::id()));
        tracing::info!(%identity, "waiting for the lease");
        let rx = leader::acquire(client.clone(), &settings.namespace, identity)
            .await
            .context("leader election")?;
        tracing::info!("holding the lease");
        Some(rx)
    } else {
        None
    };
    metrics.leader.set(1);
    ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let controllers = controller::run(client, Arc::new(plane), metrics, settings);
    match lease {
        Some(mut rx) => {
            let lost = async move {
                while *rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                r = controllers => r?,
                () = lost => anyhow::bail!("lost the lease; exiting so a follower can lead"),
            }
        }
        None => controllers.await?,
    }
    tracing::info!("stopped");
    Ok(())
}

async fn serve_http(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    use axum::{Router, http::StatusCode, routing::get};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/ready",
            get(move || {
                let ready = ready.load(std::sync::atomic::Ordering::Relaxed);
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not leading yet")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics.encode();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
