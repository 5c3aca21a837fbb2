//! The fault suite: 5,000 postings over 20 boards and 200 subscriptions with a known set
//! of expected notices, run by real processes (two replicas of the fetcher, embedder and
//! notifier; one matcher, as the embedded store has) against a real nats-server, a real
//! SMTP server and a Slack receiver, while the test
//!
//! - kill -9's each role's processes 10 times at seeded random moments and restarts them;
//! - restarts the NATS server twice (JetStream on disk);
//! - has the SMTP server answer 451 and 421 and drop connections for a share of mails,
//!   and 550 to the "bounce" addresses; the Slack receiver answer 429 with
//!   `Retry-After`, 500, or nothing in time.
//!
//! It asserts that every expected notice arrives, none unexpected, that any repeat
//! carries the same Message-ID (or Slack notice id) as its first copy, that the notices
//! to bounced addresses are dead-lettered and counted in their subscription's report,
//! that the streams keep their limits, and that every process stops cleanly at the end.
//! The seed is `JOBMATCH_FAULTS_SEED` (default below); every fault is printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jobmatch_core::ids::kv_key;
use jobmatch_core::messages as m;
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::mail::read_maildir;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc, Smtp};
use jobmatch_e2e::slack::{Chaos, SlackReceiver};
use jobmatch_e2e::wait_for;

const BOARDS: usize = 20;
const PER_BOARD: usize = 250;
const SUBSCRIPTIONS: usize = 200;
/// Skill words: a posting has one of each kind, a subscription requires one pair.
const SKILLS: usize = 25;
const TEAMS: usize = 16;
const KILLS_PER_ROLE: usize = 10;
const DEFAULT_SEED: u64 = 20_261_202;

/// xorshift64*: reproducible from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

fn skill(n: usize) -> (usize, usize) {
    (n % SKILLS, (n / SKILLS) % TEAMS)
}

fn board_token(b: usize) -> String {
    format!("board{b:02}")
}

/// A Greenhouse board: short descriptions (below dedup's near-duplicate length, so every
/// posting is its own job) naming the posting's two skill words.
fn board(b: usize) -> String {
    let jobs: Vec<serde_json::Value> = (0..PER_BOARD)
        .map(|i| {
            let n = b * PER_BOARD + i;
            let (s, t) = skill(n);
            serde_json::json!({
                "id": 9_000_000 + n,
                "title": format!("Software Engineer {n}"),
                "absolute_url": format!("https://boards.greenhouse.io/{}/jobs/{}", board_token(b), 9_000_000 + n),
                "location": {"name": "Remote"},
                "company_name": format!("Company {b:02}"),
                "updated_at": "2026-11-20T10:00:00Z",
                "content": format!("&lt;p&gt;Build backend services in Rust and Go. Skills: skill{s:02} team{t:02}.&lt;/p&gt;"),
            })
        })
        .collect();
    serde_json::json!({"jobs": jobs, "meta": {"total": PER_BOARD}}).to_string()
}

/// Subscription `j`: its skill pair, and whether it goes to Slack or a bouncing address.
fn subscription(j: usize) -> (usize, usize, Channel) {
    let channel = if j % 4 == 3 {
        Channel::Slack
    } else if j.is_multiple_of(20) {
        Channel::Bounce
    } else {
        Channel::Email
    };
    (j % SKILLS, (j / SKILLS) % TEAMS, channel)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Channel {
    Email,
    Slack,
    Bounce,
}

fn config(boards_url: &str, slack_url: &str) -> String {
    let mut docs = Vec::new();
    for b in 0..BOARDS {
        docs.push(format!(
            "apiVersion: jobmatch.dev/v1alpha1\nkind: JobSource\nmetadata: {{name: {token}}}\nspec: {{board: {{kind: greenhouse, token: {token}}}, baseUrl: {boards_url}, interval: 3s}}\n",
            token = board_token(b)
        ));
    }
    docs.push(format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: slack}}\nstringData: {{webhook: {slack_url}/services/T000/B000/faults}}\n"
    ));
    for j in 0..SUBSCRIPTIONS {
        let (s, t, channel) = subscription(j);
        let notify = match channel {
            Channel::Email => format!("{{email: {{to: s{j}@example.com}}}}"),
            Channel::Bounce => format!("{{email: {{to: bounce{j}@example.com}}}}"),
            Channel::Slack => "{slack: {webhookSecretRef: {name: slack, key: webhook}}}".into(),
        };
        docs.push(format!(
            "apiVersion: jobmatch.dev/v1alpha1\nkind: MatchSubscription\nmetadata: {{name: s{j}}}\nspec:\n  resume: {{text: \"Backend software engineer: Rust, Go, distributed services, skill{s:02} and team{t:02}.\"}}\n  criteria: {{minScore: 0.0, mustHave: [skill{s:02}, team{t:02}], topK: 100}}\n  notify: {notify}\n"
        ));
    }
    docs.join("---\n")
}

/// The notice keys every subscription should get, and those that must bounce.
fn expected() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut delivered, mut bounced) = (BTreeSet::new(), BTreeSet::new());
    for j in 0..SUBSCRIPTIONS {
        let (s, t, channel) = subscription(j);
        for n in 0..BOARDS * PER_BOARD {
            if skill(n) != (s, t) {
                continue;
            }
            let id = format!(
                "greenhouse:{}:{}",
                board_token(n / PER_BOARD),
                9_000_000 + n
            );
            let key = format!("s{j}.{}", kv_key(&id));
            if channel == Channel::Bounce {
                bounced.insert(key);
            } else {
                delivered.insert(key);
            }
        }
    }
    (delivered, bounced)
}

/// One role process, restarted whenever it is killed or exits.
struct Replica {
    role: &'static str,
    index: usize,
    proc: Option<Proc>,
    log: PathBuf,
    kills: usize,
    exits: usize,
}

impl Replica {
    fn name(&self) -> String {
        format!("{}-{}", self.role, self.index)
    }

    fn start(&mut self, env: &JobmatchEnv) {
        let mut command = env.command(&[self.role], &self.log);
        command
            .env("JOBMATCH_NOTIFY_ATTEMPTS", "8")
            .env("JOBMATCH_NOTIFY_BACKOFF", "200ms")
            .env("JOBMATCH_NOTIFY_TIMEOUT", "2s")
            .env("JOBMATCH_NOTIFY_CONCURRENCY", "8")
            .env("HOSTNAME", self.name())
            // The matcher's per-pair debug lines would be a million here.
            .env("JOBMATCH_LOG", "info");
        for (k, v) in LIMITS {
            command.env(k, v);
        }
        self.proc = Some(Proc::spawn(&self.name(), &mut command));
    }

    /// Restarts it if it ended on its own; true when it had.
    fn revive(&mut self, env: &JobmatchEnv) -> bool {
        let ended = self.proc.as_mut().is_some_and(|p| p.try_exit().is_some());
        if ended {
            self.exits += 1;
            self.start(env);
        }
        ended
    }

    async fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill9().await;
        }
        self.kills += 1;
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(25);
        format!("--- {} ---\n{}", self.name(), lines[from..].join("\n"))
    }
}

/// Limits the suite sets on every stream and bucket (and checks afterwards).
const LIMITS: [(&str, &str); 6] = [
    ("JOBMATCH_BUS_JOBS_MAX_BYTES", "64MiB"),
    ("JOBMATCH_BUS_VECTORS_MAX_BYTES", "128MiB"),
    ("JOBMATCH_BUS_MATCHES_MAX_BYTES", "64MiB"),
    ("JOBMATCH_BUS_DEAD_LETTERS_MAX_BYTES", "16MiB"),
    ("JOBMATCH_BUS_NOTICES_MAX_BYTES", "16MiB"),
    ("JOBMATCH_BUS_JOBS_MAX_AGE", "2d"),
];

/// Deliveries by notice key: each copy's Message-ID (email) or notice id (Slack).
fn deliveries(smtp: &Smtp, slack: &SlackReceiver) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for mail in read_maildir(&smtp.maildir) {
        let key = mail
            .header("x-jobmatch-notice")
            .unwrap_or_default()
            .to_owned();
        let id = mail.header("message-id").unwrap_or_default().to_owned();
        out.entry(key).or_default().push(id);
    }
    // A Slack notice names its key's digest; map it back through the expected keys.
    for id in slack.notice_ids() {
        out.entry(format!("slack:{id}")).or_default().push(id);
    }
    out
}

/// Normalises Slack entries (`slack:<digest of key>`) to notice keys.
fn by_key(
    raw: BTreeMap<String, Vec<String>>,
    digests: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, copies) in raw {
        let key = match key.strip_prefix("slack:") {
            Some(digest) => digests
                .get(digest)
                .cloned()
                .unwrap_or_else(|| format!("unknown slack notice {digest}")),
            None => key,
        };
        out.entry(key).or_default().extend(copies);
    }
    out
}

async fn read_report(js: &async_nats::jetstream::Context, name: &str) -> Option<m::Report> {
    let kv = js.get_key_value(m::REPORTS_BUCKET).await.ok()?;
    let raw = kv.get(format!("subscription.{name}")).await.ok()??;
    serde_json::from_slice(&raw).ok()
}

async fn count_keys(js: &async_nats::jetstream::Context, bucket: &str, prefix: &str) -> usize {
    use futures::StreamExt;
    let Ok(kv) = js.get_key_value(bucket).await else {
        return 0;
    };
    let Ok(keys) = kv.keys().await else {
        return 0;
    };
    keys.filter_map(|k| async move { k.ok() })
        .filter(|k| std::future::ready(k.starts_with(prefix)))
        .count()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn no_notice_lost_none_unexpected_through_kills_restarts_and_faulty_servers() {
    let seed: u64 = std::env::var("JOBMATCH_FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("fault suite seed {seed} (set JOBMATCH_FAULTS_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let stamp = |started: Instant| format!("[{:>6.1}s]", started.elapsed().as_secs_f64());

    let mut nats = Nats::start().await;
    let smtp = Smtp::start_faulty(seed, 0.10, 0.05, 0.05).await;
    let slack = SlackReceiver::start().await;
    slack.chaos(Chaos {
        seed,
        share_429: 0.10,
        share_500: 0.05,
        share_timeout: 0.03,
        hang: Duration::from_secs(3),
    });
    let boards =
        BoardServer::start_with((0..BOARDS).map(|b| (board_token(b), board(b))).collect()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config(&boards.url, &slack.url)).expect("config");
    let env = JobmatchEnv {
        nats_url: nats.url.clone(),
        smtp_url: Some(smtp.url.clone()),
        data_dir: dir.path().join("data"),
    };
    let (want, bounced) = expected();
    let digests: BTreeMap<String, String> = want
        .iter()
        .chain(&bounced)
        .map(|k| (kv_key(k), k.clone()))
        .collect();
    println!(
        "{} expected notices, {} to bouncing addresses",
        want.len(),
        bounced.len()
    );

    let apply = env
        .command(
            &["apply", "-f", &config_path.display().to_string()],
            &dir.path().join("apply.log"),
        )
        .status()
        .await
        .expect("jobmatch apply");
    assert!(apply.success(), "jobmatch apply failed");

    let replica = |role: &'static str, index: usize| Replica {
        role,
        index,
        proc: None,
        log: dir.path().join(format!("{role}-{index}.log")),
        kills: 0,
        exits: 0,
    };
    let mut fleet: Vec<Replica> = vec![
        replica("embedder", 0),
        replica("embedder", 1),
        replica("matcher", 0),
        replica("notifier", 0),
        replica("notifier", 1),
    ];
    for r in &mut fleet {
        r.start(&env);
    }
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.expect("nats"));
    // Every subscription's resume in the matcher before the first posting, so every
    // match is found when its job arrives (not only the best topK of a backfill).
    wait_for(
        "every subscription backfilled",
        Duration::from_secs(180),
        || {
            let js = js.clone();
            async move {
                (count_keys(&js, m::MATCHER_STATE_BUCKET, "subscription.").await >= SUBSCRIPTIONS)
                    .then_some(())
            }
        },
    )
    .await;
    println!("{} subscriptions ready", stamp(started));
    fleet.push(replica("fetcher", 0));
    fleet.push(replica("fetcher", 1));
    for r in fleet.iter_mut().filter(|r| r.role == "fetcher") {
        r.start(&env);
    }

    // The chaos: each role's replicas killed KILLS_PER_ROLE times in all, in a seeded
    // order, one kill every 0.6–1.8 s; NATS restarted after a third and two thirds of
    // them.
    let roles = ["fetcher", "embedder", "matcher", "notifier"];
    let mut schedule: Vec<&str> = roles
        .iter()
        .flat_map(|r| std::iter::repeat_n(*r, KILLS_PER_ROLE))
        .collect();
    for i in (1..schedule.len()).rev() {
        schedule.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let nats_restarts_at = [schedule.len() / 3, 2 * schedule.len() / 3];
    let mut nats_restarts = 0;
    for (n, role) in schedule.iter().enumerate() {
        tokio::time::sleep(rng.millis(600, 1_800)).await;
        if nats_restarts_at.contains(&n) {
            println!("{} restarting nats-server", stamp(started));
            nats.restart().await;
            nats_restarts += 1;
        }
        let replicas: Vec<usize> = (0..fleet.len())
            .filter(|&i| fleet[i].role == *role)
            .collect();
        let victim = replicas[rng.below(replicas.len() as u64) as usize];
        println!("{} kill -9 {}", stamp(started), fleet[victim].name());
        fleet[victim].kill().await;
        tokio::time::sleep(rng.millis(100, 1_000)).await;
        fleet[victim].start(&env);
        for r in fleet.iter_mut() {
            if r.revive(&env) {
                println!("{} {} had exited; restarted", stamp(started), r.name());
            }
        }
    }
    println!(
        "{} chaos over: {} delivered so far; waiting for the rest",
        stamp(started),
        deliveries(&smtp, &slack).len()
    );

    // Every expected notice, and every bounce dead-lettered.
    wait_for("every expected notice", Duration::from_secs(420), || {
        for r in fleet.iter_mut() {
            r.revive(&env);
        }
        let got = by_key(deliveries(&smtp, &slack), &digests);
        let done = want.iter().all(|k| got.contains_key(k));
        async move { done.then_some(()) }
    })
    .await;
    let dead = wait_for(
        "every bounce dead-lettered",
        Duration::from_secs(120),
        || {
            let (js, want) = (js.clone(), bounced.len());
            async move {
                let mut stream = js.get_stream(m::DEAD_LETTER_STREAM).await.ok()?;
                let n = stream.info().await.ok()?.state.messages;
                (n as usize >= want).then_some(n)
            }
        },
    )
    .await;
    // Anything that should not be sent has had time to be.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = by_key(deliveries(&smtp, &slack), &digests);
    let delivered: BTreeSet<String> = got.keys().cloned().collect();
    let unexpected: Vec<_> = delivered.difference(&want).collect();
    let missing: Vec<_> = want.difference(&delivered).collect();
    let logs = || {
        fleet
            .iter()
            .map(Replica::tail)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        unexpected.is_empty() && missing.is_empty(),
        "unexpected: {unexpected:?}\nmissing: {missing:?}\n{}",
        logs()
    );
    // A repeat (a kill after the server accepted, before `sent`) carries the same id.
    let repeats: Vec<_> = got.iter().filter(|(_, copies)| copies.len() > 1).collect();
    for (key, copies) in &repeats {
        assert!(
            copies.iter().all(|c| c == &copies[0] && !c.is_empty()),
            "{key}: copies with different ids {copies:?}"
        );
    }
    // Bounces: dead-lettered, and counted on their subscription.
    let bus = jobmatch_workers::bus::Bus::connect(&nats.url)
        .await
        .expect("bus");
    let letters = jobmatch_workers::dead_letters::list(&bus, Some("notifier"))
        .await
        .expect("dead letters");
    let bounced_keys: BTreeSet<String> = letters
        .iter()
        .filter_map(|l| serde_json::from_slice::<m::MatchFound>(&l.payload).ok())
        .map(|f| f.notice_key())
        .collect();
    assert_eq!(bounced_keys, bounced, "the dead letters are the bounces");
    assert!(
        letters.iter().all(|l| l.reason.contains("550")),
        "{letters:?}"
    );
    for j in (0..SUBSCRIPTIONS).filter(|j| subscription(*j).2 == Channel::Bounce) {
        let name = format!("s{j}");
        let report = wait_for(
            &format!("{name}'s failures reported"),
            Duration::from_secs(30),
            || {
                let (js, name) = (js.clone(), name.clone());
                async move {
                    read_report(&js, &name)
                        .await
                        .filter(|r| r.notices_failed.unwrap_or(0) > 0)
                }
            },
        )
        .await;
        assert!(report.last_error.is_some(), "{name}: {report:?}");
    }
    // Streams and buckets within the limits set.
    for (stream, var) in [
        (m::JOBS_STREAM, "JOBMATCH_BUS_JOBS_MAX_BYTES"),
        (m::VECTORS_STREAM, "JOBMATCH_BUS_VECTORS_MAX_BYTES"),
        (m::MATCHES_STREAM, "JOBMATCH_BUS_MATCHES_MAX_BYTES"),
        (m::DEAD_LETTER_STREAM, "JOBMATCH_BUS_DEAD_LETTERS_MAX_BYTES"),
        ("KV_jobmatch-notices", "JOBMATCH_BUS_NOTICES_MAX_BYTES"),
    ] {
        let limit = LIMITS
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| *v)
            .unwrap_or_default();
        let limit: i64 = limit.trim_end_matches("MiB").parse::<i64>().expect("MiB") << 20;
        let info = js
            .get_stream(stream)
            .await
            .expect("stream")
            .info()
            .await
            .expect("info")
            .clone();
        assert_eq!(info.config.max_bytes, limit, "{stream}");
        assert!(
            info.config.max_age > Duration::ZERO,
            "{stream} has an age limit"
        );
        assert!(
            (info.state.bytes as i64) <= limit,
            "{stream}: {} bytes over {limit}",
            info.state.bytes
        );
        println!("{stream:<22} {:>10} bytes of {limit}", info.state.bytes);
    }

    // Notified (or dead-lettered) matches leave MATCHES.
    wait_for("MATCHES emptied", Duration::from_secs(60), || {
        let js = js.clone();
        async move {
            let mut stream = js.get_stream(m::MATCHES_STREAM).await.ok()?;
            (stream.info().await.ok()?.state.messages == 0).then_some(())
        }
    })
    .await;
    let (kills, exits): (usize, usize) = fleet
        .iter()
        .fold((0, 0), |(k, e), r| (k + r.kills, e + r.exits));
    println!(
        "{} done: {} notices delivered, {} dead-lettered ({} dead letters), {} repeats",
        stamp(started),
        delivered.len(),
        bounced_keys.len(),
        dead,
        repeats.len()
    );
    println!(
        "faults: {kills} kills, {exits} exits on their own (restarted), {nats_restarts} NATS restarts; \
         SMTP {:?}; Slack {:?}",
        tally(smtp.faults().iter().map(String::as_str)),
        tally(slack.faults().into_iter())
    );

    // Every process stops cleanly.
    for r in fleet {
        let name = r.name();
        let tail = r.tail();
        if let Some(p) = r.proc {
            let status = p.stop().await;
            assert!(
                status.is_some_and(|s| s.success()),
                "{name} did not stop cleanly: {status:?}\n{tail}"
            );
        }
    }
}

fn tally<'a>(faults: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut out = BTreeMap::new();
    for f in faults {
        *out.entry(f).or_insert(0) += 1;
    }
    out
}
