//! The JetStream configuration of every stream, bucket and consumer, computed from the
//! limits: data only, applied by [`crate::setup`].

use std::time::Duration;

use async_nats::jetstream::{consumer, kv, stream};
use jobmatch_core::messages::{self as m, ConsumerSpec};

use crate::limits::{Bound, BusLimits};

/// How long a published message id is remembered for deduplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The four streams.
pub fn streams(limits: &BusLimits) -> Vec<stream::Config> {
    [
        (m::JOBS_STREAM, m::JOBS_SUBJECTS, limits.jobs),
        (m::VECTORS_STREAM, m::VECTORS_SUBJECTS, limits.vectors),
        (m::MATCHES_STREAM, m::MATCHES_SUBJECTS, limits.matches),
        (
            m::DEAD_LETTER_STREAM,
            m::DEAD_LETTER_SUBJECTS,
            limits.dead_letters,
        ),
    ]
    .into_iter()
    .map(|(name, subjects, bound)| stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        max_age: bound.max_age,
        max_bytes: bound.max_bytes,
        num_replicas: limits.replicas,
        ..Default::default()
    })
    .collect()
}

/// A bucket that only ever holds small configuration-like values.
const SMALL: Bound = Bound {
    max_age: Duration::ZERO,
    max_bytes: 256 << 20,
};

/// A bucket whose entries can be recomputed.
const CACHE: Bound = Bound {
    max_age: Duration::from_secs(30 * 24 * 3600),
    max_bytes: 1 << 30,
};

/// The key-value buckets, each with the history it keeps.
pub fn buckets(limits: &BusLimits) -> Vec<kv::Config> {
    [
        (m::CONFIG_BUCKET, m::CONFIG_HISTORY, SMALL),
        (m::POSTINGS_BUCKET, 1, limits.postings),
        // One key per open job identity: no larger than the postings' memory.
        (m::IDENTITIES_BUCKET, 1, limits.postings),
        (m::SCHEDULE_BUCKET, 1, SMALL),
        (m::NOTICES_BUCKET, 1, limits.notices),
        (m::REPORTS_BUCKET, 1, SMALL),
        // A cache: an entry aged out is embedded again, once.
        (m::RESUME_VECTORS_BUCKET, 1, CACHE),
        // Versions guard against reordering within seconds; digests against repeated
        // backfills. Either aged out costs one redundant step, nothing more.
        (m::MATCHER_STATE_BUCKET, 1, CACHE),
    ]
    .into_iter()
    .map(|(name, history, bound)| kv::Config {
        bucket: name.to_owned(),
        history,
        storage: stream::StorageType::File,
        max_age: bound.max_age,
        max_bytes: bound.max_bytes,
        num_replicas: limits.replicas,
        ..Default::default()
    })
    .collect()
}

/// A durable pull consumer: explicit acks, its redelivery bound, shared by every replica
/// of its role.
pub fn consumer(spec: &ConsumerSpec, limits: &BusLimits) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(spec.name.to_owned()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(spec.ack_wait_secs),
        max_ack_pending: m::MAX_ACK_PENDING,
        max_deliver: spec.server_max_deliver(),
        num_replicas: limits.replicas,
        ..Default::default()
    }
}

/// How long to wait before the next delivery of a message whose `delivered`th delivery
/// failed: doubling from the consumer's first delay to its cap, with jitter so that a
/// burst of failures does not come back as one burst.
pub fn retry_delay(spec: &ConsumerSpec, delivered: u64) -> Duration {
    use backoff_schedule::nth_delay;
    nth_delay(
        Duration::from_millis(spec.retry_first_ms),
        Duration::from_secs(spec.retry_max_secs),
        delivered.saturating_sub(1),
    )
}

mod backoff_schedule {
    use std::time::Duration;

    use backon::{BackoffBuilder, ExponentialBuilder};

    /// The `n`th (from 0) delay of an exponential schedule.
    pub fn nth_delay(first: Duration, max: Duration, n: u64) -> Duration {
        ExponentialBuilder::new()
            .with_min_delay(first)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(n.min(64) as usize)
            .unwrap_or(max)
            .min(max + first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_and_bucket_is_bounded_and_replicated() {
        let limits = BusLimits {
            replicas: 3,
            ..BusLimits::default()
        };
        let streams = streams(&limits);
        assert_eq!(streams.len(), m::STREAMS.len());
        for (config, (name, subjects)) in streams.iter().zip(m::STREAMS) {
            assert_eq!(
                (config.name.as_str(), config.subjects[0].as_str()),
                (name, subjects)
            );
            assert!(
                config.max_age > Duration::ZERO && config.max_bytes > 0,
                "{name}"
            );
            assert_eq!(config.num_replicas, 3);
            assert_eq!(config.duplicate_window, DUPLICATE_WINDOW);
        }
        for config in buckets(&limits) {
            assert!(config.max_bytes > 0, "{}", config.bucket);
            assert_eq!(config.num_replicas, 3);
        }
        let notices = buckets(&limits)
            .into_iter()
            .find(|b| b.bucket == m::NOTICES_BUCKET)
            .unwrap();
        assert_eq!(notices.max_age, limits.notices.max_age);
    }

    #[test]
    fn consumers_stop_redelivering_after_their_attempts() {
        for spec in m::CONSUMERS {
            let c = consumer(&spec, &BusLimits::default());
            assert_eq!(c.durable_name.as_deref(), Some(spec.name));
            assert_eq!(c.max_deliver, spec.attempts as i64 + 2);
            assert_eq!(c.ack_policy, consumer::AckPolicy::Explicit);
        }
    }

    #[test]
    fn retry_delays_grow_to_their_cap() {
        let spec = m::NOTIFIER_CONSUMER;
        let first = Duration::from_millis(spec.retry_first_ms);
        let cap = Duration::from_secs(spec.retry_max_secs);
        let d1 = retry_delay(&spec, 1);
        assert!(d1 >= first && d1 <= first * 2, "{d1:?}");
        let d4 = retry_delay(&spec, 4);
        assert!(d4 >= first * 8, "{d4:?}");
        for delivered in [12, 40, 1000] {
            let d = retry_delay(&spec, delivered);
            assert!(d >= cap / 2 && d <= cap + first, "{delivered}: {d:?}");
        }
    }
}
