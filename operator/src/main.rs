//! `jobmatch-operator`: `run` (the default) reconciles; `crds` prints the CRDs;
//! `uninstall` prepares the namespace for `helm uninstall`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jobmatch_operator::config_plane::NatsConfigPlane;
use jobmatch_operator::metrics::Metrics;
use jobmatch_operator::settings::OperatorSettings;
use jobmatch_operator::{controller, crd, leader, uninstall};

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
    /// Stop the operator and take its finalizers and Lease away, so that `helm uninstall`
    /// leaves nothing behind (the chart's pre-delete hook runs this).
    Uninstall {
        /// How long to wait for the operator's pods to stop.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
}

fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    cli.settings.fleet.bus_env = jobmatch_operator::settings::bus_env()?;
    let runtime = || {
        init_tracing();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Crds => {
            print!("{}", crd::yaml()?);
            Ok(())
        }
        Command::Run => runtime()?.block_on(run(cli.settings)),
        Command::Uninstall { wait } => runtime()?.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
            let deployment = cli
                .settings
                .owner_deployment
                .as_deref()
                .unwrap_or("jobmatch-operator");
            uninstall::run(client, &cli.settings.namespace, deployment, wait).await?;
            Ok(())
        }),
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
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API")?;
    let plane = NatsConfigPlane::connect(
        &settings.nats_url,
        settings.nats_credentials.as_deref(),
        settings.nats_ca.as_deref(),
    )
    .await?;
    // Ready means able to lead: a follower is ready too, or a rolling update of the
    // chart's two replicas could never finish. Who leads is on /metrics.
    ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let lease = if settings.leader_elect {
        let identity = std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("jobmatch-operator-{}", std::process::id()));
        tracing::info!(%identity, "waiting for the lease");
        let lease = tokio::select! {
            lease = leader::acquire(client.clone(), &settings.namespace, identity) => {
                lease.context("leader election")?
            }
            () = shutdown_signal() => {
                tracing::info!("stopped before leading");
                return Ok(());
            }
        };
        tracing::info!("holding the lease");
        Some(lease)
    } else {
        None
    };
    metrics.leader.set(1);

    let controllers = controller::run(client, Arc::new(plane), metrics.clone(), settings);
    let result = match lease {
        Some(mut lease) => {
            let result = tokio::select! {
                r = controllers => r.map_err(anyhow::Error::from),
                () = lease.lost() => Err(anyhow::anyhow!("lost the lease; exiting so a follower can lead")),
            };
            metrics.leader.set(0);
            lease.release().await;
            result
        }
        None => controllers.await.map_err(anyhow::Error::from),
    };
    result?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
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
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "connecting to the API server and NATS",
                        )
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
