//! The reconcilers, in stages: dereference what a resource points at, validate (pure,
//! in `jobmatch_core::validate`), write the workers' configuration, then status (only
//! when it changed) and an Event on each transition of `Ready`. The fleet loop sizes
//! the worker Deployments from the sources present.
//!
//! Steady state writes nothing: configuration entries and status are compared before
//! writing, fleet objects carry a digest of what was applied, and status writes do not
//! retrigger work because an unchanged status is never written.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jobmatch_core::messages;
use jobmatch_core::validate::{self, Reference};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Notify;

use crate::apply;
use crate::config_plane::{ConfigPlane, ConfigPlaneError};
use crate::crd::{JobSource, MatchSubscription};
use crate::fleet::{self, Owner, ServerApis};
use crate::metrics::{ErrorLabel, Metrics};
use crate::settings::OperatorSettings;
use crate::status::{self, Outcome};

pub const SUBSCRIPTION_FINALIZER: &str = "jobmatch.dev/erase-subscription-data";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("configuration plane: {0}")]
    Plane(#[from] ConfigPlaneError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A low-cardinality label for metrics and Events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Plane(_) => "nats",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                _ => "finalizer",
            },
        }
    }
}

pub struct Context {
    pub client: Client,
    /// The notifiers' SMTP Secret, as last read.
    pub smtp: SmtpSecret,
    pub namespace: String,
    pub plane: Arc<dyn ConfigPlane>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: OperatorSettings,
    /// Woken when sources change, so the fleet is resized.
    pub fleet_wake: Arc<Notify>,
}

/// The notifiers' SMTP Secret (key `url`), read at most every few seconds however many
/// subscriptions ask, as a digest of its value (never the value): present or not for the
/// email subscriptions' status, and the digest on the notifier's pod template so that a
/// new or changed Secret rolls the notifiers (they read it from their environment).
pub struct SmtpSecret {
    name: String,
    last: tokio::sync::Mutex<Option<(std::time::Instant, Option<String>)>>,
}

impl SmtpSecret {
    const FRESH_FOR: Duration = Duration::from_secs(5);

    pub fn new(name: &str) -> Self {
        SmtpSecret {
            name: name.to_owned(),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The digest of the Secret's `url`; `None` when the Secret or the key is missing.
    /// The second value says whether it changed since the previous read.
    async fn digest(
        &self,
        client: &Client,
        namespace: &str,
    ) -> Result<(Option<String>, bool), Error> {
        let mut last = self.last.lock().await;
        if let Some((at, digest)) = last.as_ref()
            && at.elapsed() < Self::FRESH_FOR
        {
            return Ok((digest.clone(), false));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let digest = api
            .get_opt(&self.name)
            .await?
            .and_then(|s| s.data.unwrap_or_default().remove("url"))
            .filter(|url| !url.0.iter().all(u8::is_ascii_whitespace))
            .map(|url| jobmatch_core::ids::digest_hex(&[&url.0])[..16].to_owned());
        let changed = last.as_ref().is_some_and(|(_, d)| *d != digest);
        *last = Some((std::time::Instant::now(), digest.clone()));
        Ok((digest, changed))
    }
}

/// An email subscription needs the notifiers' SMTP Secret: without it every notice would
/// be dead-lettered, so the subscription is refused until the Secret exists.
pub fn smtp_requirement(
    config: &jobmatch_core::messages::SubscriptionConfig,
    smtp_present: bool,
    secret: &str,
) -> Option<validate::FieldError> {
    match config.channel {
        jobmatch_core::Channel::Email { .. } if !smtp_present => {
            let mut e = validate::FieldError::new(
                "spec.notify.email",
                format!(
                    "no Secret {secret:?} with key \"url\" (the notifiers' SMTP server, e.g. smtp://user:pass@host:587; the chart's smtp.secretName)"
                ),
            );
            e.missing_reference = true;
            Some(e)
        }
        _ => None,
    }
}

impl Context {
    /// Writes a changed status, then an Event if `Ready` moved.
    async fn write_status<K>(
        &self,
        obj: &K,
        status: serde_json::Value,
        previous: &[crate::crd::Condition],
        next: &crate::crd::Condition,
        outcome: &Outcome,
        resource: &'static str,
    ) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await?;
        self.metrics.wrote(resource);
        if status::transition(previous, next) {
            let type_ = if outcome.ready {
                EventType::Normal
            } else {
                EventType::Warning
            };
            self.event(
                obj,
                type_,
                outcome.reason,
                "Reconcile",
                outcome.message.clone(),
            )
            .await;
        }
        Ok(())
    }

    async fn event<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        match self.recorder.publish(&event, &obj.object_ref(&())).await {
            Ok(()) => self.metrics.wrote("events"),
            Err(e) => tracing::warn!(error = %e, "publishing an event failed"),
        }
    }
}

// ---------------------------------------------------------------- JobSource

async fn reconcile_source(source: Arc<JobSource>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("JobSource");
    let name = source.name_any();
    let outcome = match validate::source_config(&name, source.spec.0.clone()) {
        Ok(config) => {
            if ctx.plane.put_source(&config).await? {
                ctx.metrics.wrote("nats-config");
            }
            if config.spec.suspend {
                Outcome::ready("Suspended", "not polled while spec.suspend is true")
            } else {
                Outcome::ready("Configured", "configuration published to the fetchers")
            }
        }
        Err(e) => {
            ctx.plane.delete_source(&name).await?;
            Outcome::not_ready("InvalidSpec", e.to_string())
        }
    };
    let report = ctx.plane.report(&messages::source_key(&name));
    let previous = source.status.as_ref();
    let next = status::source_status(
        &outcome,
        source.meta().generation,
        report.as_ref(),
        previous,
        &jobmatch_core::rfc3339_now(),
    );
    if previous != Some(&next) {
        let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
        ctx.write_status(
            source.as_ref(),
            serde_json::json!(next),
            previous_conditions,
            &next.conditions[0],
            &outcome,
            "jobsources/status",
        )
        .await?;
    }
    ctx.fleet_wake.notify_one();
    Ok(Action::requeue(ctx.settings.status_interval))
}

// ---------------------------------------------------------------- MatchSubscription

async fn reconcile_subscription(
    sub: Arc<MatchSubscription>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("MatchSubscription");
    let api: Api<MatchSubscription> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let had_finalizer = sub.finalizers().iter().any(|f| f == SUBSCRIPTION_FINALIZER);
    let result = finalizer(&api, SUBSCRIPTION_FINALIZER, sub.clone(), |event| async {
        match event {
            Finalizer::Apply(sub) => apply_subscription(&sub, &ctx).await,
            Finalizer::Cleanup(sub) => erase_subscription(&sub, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if !had_finalizer && sub.meta().deletion_timestamp.is_none() {
        ctx.metrics.wrote("matchsubscriptions");
    }
    result
}

/// Looks up what a subscription refers to; a missing object or key is left out.
async fn dereference<'a>(
    ctx: &Context,
    sub: &'a MatchSubscription,
) -> Result<BTreeMap<Reference<'a>, String>, Error> {
    let mut found = BTreeMap::new();
    for reference in validate::subscription_references(&sub.spec.0) {
        let value = match reference {
            Reference::Secret(r) => {
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                api.get_opt(&r.name).await?.and_then(|s| {
                    let bytes = s.data.unwrap_or_default().remove(&r.key)?;
                    String::from_utf8(bytes.0).ok()
                })
            }
            Reference::ConfigMap(r) => {
                let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
                api.get_opt(&r.name)
                    .await?
                    .and_then(|c| c.data.unwrap_or_default().remove(&r.key))
            }
        };
        if let Some(value) = value {
            found.insert(reference, value);
        }
    }
    Ok(found)
}

async fn apply_subscription(sub: &MatchSubscription, ctx: &Context) -> Result<Action, Error> {
    let name = sub.name_any();
    let found = dereference(ctx, sub).await?;
    let lookup = |reference: Reference<'_>| found.get(&reference).cloned();
    let mut validated = validate::subscription_config(&name, sub.spec.0.clone(), lookup);
    if let Ok(config) = &validated
        && matches!(config.channel, jobmatch_core::Channel::Email { .. })
    {
        let (digest, changed) = ctx.smtp.digest(&ctx.client, &ctx.namespace).await?;
        if changed {
            ctx.fleet_wake.notify_one();
        }
        if let Some(e) = smtp_requirement(config, digest.is_some(), &ctx.settings.fleet.smtp_secret)
        {
            validated = Err(e);
        }
    }
    let outcome = match validated {
        Ok(config) => {
            if ctx.plane.put_subscription(&config).await? {
                ctx.metrics.wrote("nats-config");
            }
            Outcome::ready("Configured", "resume and criteria published to the workers")
        }
        Err(e) => {
            ctx.plane.delete_subscription(&name).await?;
            let reason = if e.missing_reference {
                "MissingReference"
            } else {
                "InvalidSpec"
            };
            Outcome::not_ready(reason, e.to_string())
        }
    };
    let report = ctx.plane.report(&messages::subscription_key(&name));
    let previous = sub.status.as_ref();
    let next = status::subscription_status(
        &outcome,
        sub.meta().generation,
        report.as_ref(),
        previous,
        &jobmatch_core::rfc3339_now(),
    );
    if previous != Some(&next) {
        let previous_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
        ctx.write_status(
            sub,
            serde_json::json!(next),
            previous_conditions,
            &next.conditions[0],
            &outcome,
            "matchsubscriptions/status",
        )
        .await?;
    }
    Ok(Action::requeue(ctx.settings.status_interval))
}

async fn erase_subscription(sub: &MatchSubscription, ctx: &Context) -> Result<Action, Error> {
    let name = sub.name_any();
    ctx.plane.erase_subscription(&name).await?;
    ctx.metrics.wrote("nats-config");
    tracing::info!(subscription = %name, "erased resume vector, pending notices and notice keys");
    ctx.event(
        sub,
        EventType::Normal,
        "Erased",
        "Delete",
        "resume vector, pending notices and notice history erased".into(),
    )
    .await;
    Ok(Action::await_change())
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    // A metric label must be 'static: name the two kinds this controller runs.
    let kind = if K::kind(&()) == "JobSource" {
        "JobSource"
    } else {
        "MatchSubscription"
    };
    tracing::warn!(kind, name = %obj.name_any(), error = %error, "reconcile failed");
    ctx.metrics
        .errors
        .get_or_create(&ErrorLabel {
            kind,
            error: error.category(),
        })
        .inc();
    Action::requeue(Duration::from_secs(10))
}

// ---------------------------------------------------------------- fleet

/// Longest one pass over the fleet may take. A request the API server never answers
/// (the client's own read timeout is five minutes, for its watches) is given up and the
/// pass retried, instead of leaving the fleet as it was meanwhile.
const FLEET_PASS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the fleet waits for the JobSource cache before it says so (and waits on).
const CACHE_WAIT_WARNING: Duration = Duration::from_secs(30);

/// Resizes the fleet whenever sources change or a fleet object is touched, and removes
/// configuration entries of sources that no longer exist.
async fn run_fleet(
    ctx: Arc<Context>,
    sources: Store<JobSource>,
    apis: ServerApis,
    owner: Option<Owner>,
) {
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let wake = ctx.fleet_wake.clone();
    let watch_wake = wake.clone();
    let watch = tokio::spawn(async move {
        let mut events = watcher(
            deployments,
            watcher::Config::default().labels(&fleet::selector()),
        )
        .default_backoff()
        .touched_objects()
        .boxed();
        while events.next().await.is_some() {
            watch_wake.notify_one();
        }
    });
    let _watch = AbortOnDrop(watch);
    let mut last = None;
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        // Let a burst of changes settle into one pass.
        tokio::time::sleep(Duration::from_millis(500)).await;
        match tokio::time::timeout(CACHE_WAIT_WARNING, sources.wait_until_ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => continue,
            Err(_) => {
                tracing::warn!(after = ?CACHE_WAIT_WARNING, "the JobSource cache is not filled yet (is the API server answering its list?); waiting on");
                wake.notify_one();
                continue;
            }
        }
        let state = sources.state();
        let active = state
            .iter()
            .filter(|s| {
                s.meta().deletion_timestamp.is_none()
                    && !s.spec.0.suspend
                    && validate::source_config(&s.name_any(), s.spec.0.clone()).is_ok()
            })
            .count();
        ctx.metrics.active_sources.set(active as i64);
        let smtp_secret = match ctx.smtp.digest(&ctx.client, &ctx.namespace).await {
            Ok((digest, _)) => digest,
            Err(e) => {
                tracing::warn!(error = %e, "reading the SMTP Secret failed; retrying in 10s");
                tokio::time::sleep(Duration::from_secs(10)).await;
                wake.notify_one();
                continue;
            }
        };
        let observed = fleet::Observed {
            namespace: ctx.namespace.clone(),
            active_sources: active,
            smtp_secret,
        };
        let desired = fleet::build(&observed, &ctx.settings.fleet, apis, owner.as_ref());
        let pass = tokio::time::timeout(
            FLEET_PASS_TIMEOUT,
            apply::apply_fleet(&ctx.client, &ctx.namespace, &desired, &ctx.metrics),
        )
        .await
        .map_err(|_| format!("no answer from the API server within {FLEET_PASS_TIMEOUT:?}"))
        .and_then(|applied| applied.map_err(|e| e.to_string()));
        match pass {
            Ok(applied) if applied != last.unwrap_or_default() || applied.written > 0 => {
                tracing::info!(active_sources = active, ?applied, "fleet reconciled");
                last = Some(applied);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "applying the fleet failed; retrying in 10s");
                ctx.metrics
                    .errors
                    .get_or_create(&ErrorLabel {
                        kind: "Fleet",
                        error: "kube",
                    })
                    .inc();
                tokio::time::sleep(Duration::from_secs(10)).await;
                wake.notify_one();
                continue;
            }
        }
        // Sources deleted while no operator was running.
        let present: HashSet<String> = state.iter().map(|s| s.name_any()).collect();
        match ctx.plane.source_names().await {
            Ok(names) => {
                for name in names.into_iter().filter(|n| !present.contains(n)) {
                    match ctx.plane.delete_source(&name).await {
                        Ok(()) => {
                            ctx.metrics.wrote("nats-config");
                            tracing::info!(source = %name, "removed the entry of a deleted source");
                        }
                        Err(e) => {
                            tracing::warn!(source = %name, error = %e, "removing entry failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing source entries failed"),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A controller's cache and trigger. Managed fields are dropped before caching (they are
/// most of a cached object's size), and only changes of generation or finalizers
/// trigger a reconcile: status writes never do (deletion bumps the generation too).
/// Worker reports reach status through the periodic requeue instead.
fn watch_resources<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{Predicate, predicates, reflector};
    let (reader, writer) = reflector::store();
    let trigger = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|obj| obj.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::finalizers),
            Default::default(),
        );
    (reader, trigger)
}

/// What a controller's run yields besides reconciles: its watch failing (the controller
/// retries with backoff) is worth a line; a reconciler's failure is the error policy's.
fn log_controller_error<T, E1, E2>(
    result: Result<T, kube::runtime::controller::Error<E1, E2>>,
) -> futures::future::Ready<()>
where
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as ControllerError;
    match result {
        Ok(_) | Err(ControllerError::ReconcilerFailed(..)) => {}
        Err(ControllerError::ObjectNotFound(object)) => {
            tracing::debug!(%object, "a reconcile for an object already gone")
        }
        Err(e) => tracing::warn!(error = %e, "controller: watching failed; retrying"),
    }
    futures::future::ready(())
}

/// Runs both controllers and the fleet loop until a shutdown signal.
pub async fn run(
    client: Client,
    plane: Arc<dyn ConfigPlane>,
    metrics: Arc<Metrics>,
    settings: OperatorSettings,
) -> Result<(), Error> {
    let namespace = settings.namespace.clone();
    let apis = apply::discover(&client, settings.autoscaler).await?;
    let owner = apply::owner(&client, &namespace, settings.owner_deployment.as_deref()).await?;
    tracing::info!(?apis, owner = ?owner.as_ref().map(|o| &o.name), namespace = %namespace, "starting controllers");
    let reporter = Reporter {
        controller: "jobmatch-operator".into(),
        instance: std::env::var("HOSTNAME").ok(),
    };
    let ctx = Arc::new(Context {
        smtp: SmtpSecret::new(&settings.fleet.smtp_secret),
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        namespace: namespace.clone(),
        plane,
        metrics,
        settings,
        fleet_wake: Arc::new(Notify::new()),
    });
    let sources: Api<JobSource> = Api::namespaced(client.clone(), &namespace);
    let subscriptions: Api<MatchSubscription> = Api::namespaced(client.clone(), &namespace);
    let limits = kube::runtime::controller::Config::default()
        .concurrency(ctx.settings.max_concurrent_reconciles.max(1));
    let (store, source_trigger) = watch_resources(sources);
    let source_controller =
        Controller::for_stream(source_trigger, store.clone()).with_config(limits.clone());
    let fleet = tokio::spawn(run_fleet(ctx.clone(), store, apis, owner));
    let _fleet = AbortOnDrop(fleet);
    ctx.fleet_wake.notify_one();
    let sources_run = source_controller
        .shutdown_on_signal()
        .run(reconcile_source, error_policy, ctx.clone())
        .for_each(log_controller_error);
    let (subscription_store, subscription_trigger) = watch_resources(subscriptions);
    let subscriptions_run = Controller::for_stream(subscription_trigger, subscription_store)
        .with_config(limits)
        .shutdown_on_signal()
        .run(reconcile_subscription, error_policy, ctx.clone())
        .for_each(log_controller_error);
    futures::join!(sources_run, subscriptions_run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobmatch_core::messages::SubscriptionConfig;

    fn config(channel: jobmatch_core::Channel) -> SubscriptionConfig {
        SubscriptionConfig {
            name: "ada".into(),
            resume: "Rust".into(),
            criteria: Default::default(),
            channel,
            schedule: Default::default(),
        }
    }

    #[test]
    fn email_subscriptions_need_the_smtp_secret_and_slack_ones_do_not() {
        let email = config(jobmatch_core::Channel::Email {
            to: "ada@example.com".into(),
        });
        let e = smtp_requirement(&email, false, "jobmatch-smtp").expect("refused");
        assert_eq!(e.field, "spec.notify.email");
        assert!(e.missing_reference);
        assert!(e.to_string().contains("\"jobmatch-smtp\""), "{e}");
        assert!(smtp_requirement(&email, true, "jobmatch-smtp").is_none());
        let slack = config(jobmatch_core::Channel::Slack {
            webhook_url: "https://hooks.slack.com/x".into(),
        });
        assert!(smtp_requirement(&slack, false, "jobmatch-smtp").is_none());
    }
}
