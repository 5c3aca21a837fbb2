//! Every metric the worker exports, in one place: names (prefix `jobmatch_`), labels and
//! the registry served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// The REST API's requests.
pub struct ApiMetrics {
    /// Requests answered, by route and status.
    pub requests: Family<ApiLabel, Counter>,
    /// Seconds from request to answer, by route.
    pub seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        }
    }
}

impl ApiMetrics {
    pub fn record(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&ApiLabel {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.seconds
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(seconds);
    }
}

#[derive(Default)]
pub struct Metrics {
    pub polls: Counter,
    pub poll_error_family: Family<CategoryLabel, Counter>,
    pub postings_published: Counter,
    pub postings_malformed: Counter,
    pub posting_outcome_family: Family<OutcomeLabel, Counter>,
    pub polls_not_modified: Counter,
    pub texts_embedded: Counter,
    pub truncations: Counter,
    pub matches_found: Counter,
    pub notice_family: Family<ChannelLabel, Counter>,
    pub notice_failure_family: Family<ChannelLabel, Counter>,
    pub notices_duplicate: Counter,
    /// Claims of notices taken over from a notifier that died mid-send.
    pub notice_takeovers: Counter,
    pub dead_letter_family: Family<StageLabel, Counter>,
    pub retry_family: Family<StageLabel, Counter>,
    pub embed: EmbedMetrics,
    pub api: ApiMetrics,
}

/// The embedding queue and backend.
pub struct EmbedMetrics {
    /// Texts waiting for a batch.
    pub queue_depth: Gauge,
    /// Texts per forward pass.
    pub batch_texts: Histogram,
    /// Tokens per forward pass (before padding).
    pub batch_tokens: Histogram,
    /// Seconds per forward pass.
    pub batch_seconds: Histogram,
    /// Tokens embedded.
    pub tokens: Counter,
    /// Throughput of the last batch.
    pub tokens_per_second: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Requests answered "busy" because the queue was full.
    pub overloaded: Counter,
}

impl Default for EmbedMetrics {
    fn default() -> Self {
        Self {
            queue_depth: Gauge::default(),
            batch_texts: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            batch_tokens: Histogram::new(exponential_buckets(16.0, 2.0, 12)),
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            tokens: Counter::default(),
            tokens_per_second: Gauge::default(),
            overloaded: Counter::default(),
        }
    }
}

impl Metrics {
    pub fn poll_errors(&self, category: &str) -> Counter {
        self.poll_error_family
            .get_or_create(&CategoryLabel {
                category: category.to_owned(),
            })
            .clone()
    }

    /// Counts one poll's postings by what dedup made of them.
    pub fn count_postings(&self, c: &jobmatch_core::messages::PollCounts) {
        for (outcome, n) in [
            ("new", c.new),
            ("updated", c.updated),
            ("unchanged", c.unchanged),
            ("closed", c.closed),
            ("duplicate", c.duplicates),
            ("repost", c.reposts),
        ] {
            self.posting_outcome_family
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
    }

    pub fn notices_sent(&self, channel: &str) -> Counter {
        self.notice_family
            .get_or_create(&ChannelLabel {
                channel: channel.to_owned(),
            })
            .clone()
    }

    pub fn notice_failures(&self, channel: &str) -> Counter {
        self.notice_failure_family
            .get_or_create(&ChannelLabel {
                channel: channel.to_owned(),
            })
            .clone()
    }

    /// Messages a stage gave up on, into DEAD_LETTERS.
    pub fn dead_letters(&self, stage: &'static str) -> Counter {
        self.dead_letter_family
            .get_or_create(&StageLabel { stage })
            .clone()
    }

    /// Failed deliveries a stage asked to have redelivered later.
    pub fn retries(&self, stage: &'static str) -> Counter {
        self.retry_family
            .get_or_create(&StageLabel { stage })
            .clone()
    }

    /// A registry holding every metric, for the `/metrics` endpoint.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("jobmatch");
        r.register("polls", "Board polls started", self.polls.clone());
        r.register(
            "poll_errors",
            "Board polls that failed, by error category",
            self.poll_error_family.clone(),
        );
        r.register(
            "postings_published",
            "New or changed postings published",
            self.postings_published.clone(),
        );
        r.register(
            "postings_malformed",
            "Postings skipped because they could not be read",
            self.postings_malformed.clone(),
        );
        r.register(
            "postings",
            "Postings polled, by what dedup made of them (new, updated, unchanged, closed, duplicate, repost)",
            self.posting_outcome_family.clone(),
        );
        r.register(
            "polls_not_modified",
            "Polls the board answered with 304 Not Modified",
            self.polls_not_modified.clone(),
        );
        r.register(
            "texts_embedded",
            "Texts embedded",
            self.texts_embedded.clone(),
        );
        r.register(
            "embed_truncations",
            "Texts cut at the model's token limit",
            self.truncations.clone(),
        );
        r.register(
            "embed_queue_depth",
            "Texts waiting for an embedding batch",
            self.embed.queue_depth.clone(),
        );
        r.register(
            "embed_batch_texts",
            "Texts per embedding forward pass",
            self.embed.batch_texts.clone(),
        );
        r.register(
            "embed_batch_tokens",
            "Tokens per embedding forward pass, before padding",
            self.embed.batch_tokens.clone(),
        );
        r.register(
            "embed_batch_seconds",
            "Seconds per embedding forward pass",
            self.embed.batch_seconds.clone(),
        );
        r.register(
            "embed_tokens",
            "Tokens embedded, after truncation",
            self.embed.tokens.clone(),
        );
        r.register(
            "embed_tokens_per_second",
            "Tokens per second of the last embedding batch",
            self.embed.tokens_per_second.clone(),
        );
        r.register(
            "embed_overloaded",
            "Embedding requests refused because the queue was full",
            self.embed.overloaded.clone(),
        );
        r.register(
            "api_requests",
            "REST API requests answered, by route and status",
            self.api.requests.clone(),
        );
        r.register(
            "api_request_seconds",
            "Seconds from an API request to its answer, by route",
            self.api.seconds.clone(),
        );
        r.register("matches_found", "Matches found", self.matches_found.clone());
        r.register(
            "notices_sent",
            "Notices delivered, by channel",
            self.notice_family.clone(),
        );
        r.register(
            "notice_failures",
            "Notices dead-lettered after every retry failed",
            self.notice_failure_family.clone(),
        );
        r.register(
            "notices_duplicate",
            "Notices skipped because they had already been sent",
            self.notices_duplicate.clone(),
        );
        r.register(
            "notice_takeovers",
            "Notice claims taken over after their notifier died mid-send (the notice may repeat)",
            self.notice_takeovers.clone(),
        );
        r.register(
            "dead_letters",
            "Messages given up and dead-lettered, by stage",
            self.dead_letter_family.clone(),
        );
        r.register(
            "retries",
            "Failed messages handed back for a later redelivery, by stage",
            self.retry_family.clone(),
        );
        r
    }
}
