//! The operator's metrics (prefix `jobmatch_operator_`), served on `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub kind: &'static str,
    pub error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabel {
    pub resource: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabel, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    /// Write requests this operator sent to the API server and to NATS, by resource.
    pub writes: Family<WriteLabel, Counter>,
    pub leader: Gauge,
    pub active_sources: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jobmatch_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabel, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0])
        });
        let writes = Family::<WriteLabel, Counter>::default();
        let leader = Gauge::default();
        let active_sources = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            duration.clone(),
        );
        registry.register("writes", "Write requests sent, by resource", writes.clone());
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        registry.register(
            "active_sources",
            "JobSources being polled",
            active_sources.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            leader,
            active_sources,
        }
    }
}

impl Metrics {
    /// Counts a reconcile and records its duration when the guard drops.
    pub fn reconcile(self: &Arc<Self>, kind: &'static str) -> ReconcileTimer {
        self.reconciles.get_or_create(&KindLabel { kind }).inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            started: Instant::now(),
        }
    }

    pub fn wrote(&self, resource: &'static str) {
        self.writes.get_or_create(&WriteLabel { resource }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    kind: &'static str,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&KindLabel { kind: self.kind })
            .observe(self.started.elapsed().as_secs_f64());
    }
}
