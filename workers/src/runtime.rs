//! Running roles: shared clients built once, each role started as a task, the first
//! failure stops the process, and SIGINT/SIGTERM stop it cleanly (every role finishes the
//! message it holds, then exits).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::bus::Bus;
use crate::cli::{Connections, Role};
use crate::embed::{Batcher, SentenceEmbedder, Wait};
use crate::metrics::Metrics;
use crate::notify::Delivery;
use crate::store::{AnyStore, embedded::EmbeddedStore, qdrant::QdrantStore};
use crate::{api, config, http, matcher, notify};

/// How often progress reports are merged into the reports bucket.
const REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Per-role readiness, reported on `/ready`.
pub type Readiness = Arc<Mutex<BTreeMap<&'static str, bool>>>;

/// Loads configuration files and writes them to the config bucket. Invalid documents are
/// reported and skipped; the valid ones are applied.
pub async fn apply_files(bus: &Bus, files: &[std::path::PathBuf]) -> anyhow::Result<usize> {
    if files.is_empty() {
        return Ok(0);
    }
    let loaded = config::load_paths(files);
    for e in &loaded.errors {
        error!(category = e.category(), "{e}");
    }
    let written = bus.apply_config(&loaded).await?;
    info!(
        sources = loaded.sources.len(),
        subscriptions = loaded.subscriptions.len(),
        invalid = loaded.errors.len(),
        changed = written,
        "configuration applied"
    );
    Ok(written)
}

fn load_model(c: &Connections) -> anyhow::Result<Arc<SentenceEmbedder>> {
    let model = SentenceEmbedder::load(&c.model_dir, c.embedding.precision, c.embedding.embed_kernels).map_err(|e| {
        anyhow::anyhow!("{e}\n  model directory: {} (set --model-dir or JOBMATCH_MODEL_DIR; scripts/setup.sh installs all-MiniLM-L6-v2)", c.model_dir.display())
    })?;
    Ok(Arc::new(model.with_limits(c.embedding.model_limits())))
}

/// Loads the model once, starts the batching queue, and embeds a warm-up batch through
/// it (the first pass allocates), so that readiness means the first request is fast.
async fn start_embedder(c: &Connections, metrics: Arc<Metrics>) -> anyhow::Result<Batcher> {
    let started = std::time::Instant::now();
    let loader = c.clone();
    let model = tokio::task::spawn_blocking(move || load_model(&loader)).await??;
    let batcher = Batcher::start(model, c.embedding.batcher(), metrics)?;
    let warm_up = vec!["warm-up: senior software engineer, remote".to_owned(); 4];
    batcher.embed(warm_up, Wait::Yes).await?;
    let model = batcher.model();
    info!(
        dir = %c.model_dir.display(),
        device = ?model.device(),
        precision = model.precision(),
        dimension = model.dimension(),
        ms = started.elapsed().as_millis() as u64,
        "model loaded and warmed up"
    );
    Ok(batcher)
}

pub async fn run_roles(
    c: &Connections,
    roles: &[Role],
    files: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let readiness: Readiness = Arc::new(Mutex::new(
        roles.iter().map(|r| (r.name(), false)).collect(),
    ));
    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    // Set once the model is warm; until then the embedding API answers 503.
    let embedder: Arc<std::sync::OnceLock<Batcher>> = Arc::default();
    // The REST API, served once it can be (the gateway needs NATS); 503 until then.
    let api_router: Arc<std::sync::OnceLock<axum::Router>> = Arc::default();
    let access = match c.listen {
        Some(addr) => {
            let access = api::Access::load(
                c.api.api_tokens.as_deref(),
                c.api.api_public_reads,
                addr.ip().is_loopback(),
            )?;
            tasks.spawn({
                let (access, cancel) = (access.clone(), cancel.clone());
                async move {
                    access.reload(cancel).await;
                    Ok("api tokens")
                }
            });
            let (metrics, readiness, cancel) = (metrics.clone(), readiness.clone(), cancel.clone());
            let router = api_router.clone();
            let serves_api = roles.contains(&Role::Api) || roles.contains(&Role::Embedder);
            tasks.spawn(async move {
                http::serve(addr, metrics, readiness, router, serves_api, cancel).await?;
                Ok("http")
            });
            Some(access)
        }
        None => None,
    };
    // An embedder alone serves the embedding endpoints from its own queue.
    if let Some(access) = &access
        && roles.contains(&Role::Embedder)
        && !roles.contains(&Role::Api)
    {
        let state = api::ApiState {
            embedding: api::Embedding::Local(embedder.clone()),
            limits: c.api_limits(),
        };
        let _ = api_router.set(api::embedder(state, access.clone(), metrics.clone()));
    }

    let bus = Bus::connect_to(&c.nats(), jobmatch_bus::Mode::Apply).await?;
    apply_files(&bus, files).await?;
    {
        let (reports, store, cancel) = (
            bus.reports.clone(),
            bus.reports_bucket.clone(),
            cancel.clone(),
        );
        tasks.spawn(async move {
            reports.run_flusher(store, REPORT_INTERVAL, cancel).await;
            Ok("reports")
        });
    }
    if roles.contains(&Role::Embedder) {
        let batcher = start_embedder(c, metrics.clone()).await?;
        // Only this function sets it, once.
        let _ = embedder.set(batcher);
    }
    let ready = |role: Role| {
        let readiness = readiness.clone();
        move || {
            if let Ok(mut r) = readiness.lock() {
                r.insert(role.name(), true);
            }
        }
    };

    for &role in roles {
        let (bus, metrics, cancel) = (bus.clone(), metrics.clone(), cancel.clone());
        let mark_ready = ready(role);
        match role {
            Role::Fetcher => {
                let client = crate::fetch::http::BoardClient::with_politeness(
                    c.http_timeout,
                    c.politeness(),
                )?;
                tasks.spawn(async move {
                    crate::fetch::role::run(bus, metrics, client, mark_ready, cancel).await?;
                    Ok("fetcher")
                });
            }
            Role::Embedder => {
                let batcher = embedder
                    .get()
                    .cloned()
                    .ok_or_else(|| anyhow::anyhow!("model not loaded"))?;
                {
                    let (client, batcher, cancel) =
                        (bus.client.clone(), batcher.clone(), cancel.clone());
                    tasks.spawn(async move {
                        crate::embed::service::serve(client, batcher, cancel).await?;
                        Ok("embedder requests")
                    });
                }
                tasks.spawn(async move {
                    mark_ready();
                    crate::embed::role::run(bus, batcher, metrics, cancel).await?;
                    Ok("embedder")
                });
            }
            Role::Api => {
                let Some(access) = access.clone() else {
                    anyhow::bail!("the api role serves HTTP: give it --listen (JOBMATCH_LISTEN)");
                };
                let gateway = api::Gateway {
                    api: api::ApiState {
                        embedding: api::Embedding::Remote(bus.client.clone()),
                        limits: c.api_limits(),
                    },
                    nats: bus.client.clone(),
                    boards: crate::fetch::http::BoardClient::with_politeness(
                        c.http_timeout,
                        c.politeness(),
                    )?,
                };
                let _ = api_router.set(api::gateway(gateway, access, metrics.clone()));
                mark_ready();
                tasks.spawn(async move {
                    cancel.cancelled().await;
                    drop(bus);
                    Ok("api")
                });
            }
            Role::Matcher => {
                let store = match &c.qdrant_url {
                    Some(url) => {
                        AnyStore::Qdrant(QdrantStore::connect(url, c.qdrant_api_key.as_deref())?)
                    }
                    None => AnyStore::Embedded(EmbeddedStore::open(&c.data_dir)?),
                };
                tasks.spawn(async move {
                    let matcher = matcher::role::Matcher::new(bus, store, metrics);
                    mark_ready();
                    matcher::role::run(matcher, cancel).await?;
                    Ok("matcher")
                });
            }
            Role::Notifier => {
                if c.smtp_url.is_none() {
                    warn!(
                        "no SMTP server configured: email notices will be dead-lettered (set JOBMATCH_SMTP_URL)"
                    );
                }
                let settings = c.notifier_settings();
                let smtp_ca = c
                    .smtp_ca
                    .as_deref()
                    .map(|path| {
                        std::fs::read(path).with_context(|| {
                            format!("reading the SMTP CA certificates {}", path.display())
                        })
                    })
                    .transpose()?;
                let delivery = Delivery::new(
                    c.smtp_url.as_deref(),
                    smtp_ca.as_deref(),
                    &c.smtp_from,
                    settings.lanes as u32,
                    c.notify_timeout,
                )?;
                tasks.spawn(async move {
                    mark_ready();
                    let notifier = notify::role::Notifier::new(bus, delivery, metrics);
                    notify::role::run(notifier, settings, cancel).await?;
                    Ok("notifier")
                });
            }
        }
    }
    info!(roles = ?roles.iter().map(|r| r.name()).collect::<Vec<_>>(), "started");

    let mut result = Ok(());
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            _ = &mut signal, if !cancel.is_cancelled() => {
                info!("shutting down");
                cancel.cancel();
            }
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(name))) => {
                    if !cancel.is_cancelled() {
                        result = Err(anyhow::anyhow!("{name} stopped unexpectedly"));
                        cancel.cancel();
                    }
                }
                Some(Ok(Err(e))) => {
                    error!(error = %format!("{e:#}"), "role failed; stopping");
                    if result.is_ok() { result = Err(e); }
                    cancel.cancel();
                }
                Some(Err(e)) => {
                    if result.is_ok() { result = Err(e.into()); }
                    cancel.cancel();
                }
            }
        }
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
