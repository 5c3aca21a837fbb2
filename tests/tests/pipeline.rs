//! The walking skeleton end to end: two boards over loopback HTTP, a real nats-server,
//! the real model, a real SMTP server and a Slack receiver; four subscriptions. Asserts
//! the exact set of notices, each delivered once, and that restarting the workers and
//! re-polling sends nothing again. Runs once with `jobmatch all` and once with every
//! role in its own process.

use std::collections::BTreeSet;
use std::time::Duration;

use jobmatch_e2e::process::Proc;
use jobmatch_e2e::scenario::{EXPECTED, MIN_SCORES, Scenario, expected};
use jobmatch_e2e::wait_for;

const GREENHOUSE_PATH: &str = "/v1/boards/acme/jobs";
const LEVER_PATH: &str = "/v0/postings/globex";

/// Waits for the expected number of notices, then a quiet period, and checks the set.
async fn assert_notices(s: &Scenario, procs: &mut [Proc]) {
    let want = EXPECTED.len();
    wait_for("every expected notice", Duration::from_secs(240), || {
        for p in procs.iter_mut() {
            if let Some(status) = p.try_exit() {
                panic!("{} exited early ({status})\n{}", p.name, s.logs());
            }
        }
        let got = s.delivered_count();
        async move { (got >= want).then_some(()) }
    })
    .await;
    // Anything that should not be sent has had time to be sent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let deliveries = s.deliveries();
    let twice: Vec<_> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "notices sent more than once: {twice:?}");
    let got: BTreeSet<_> = deliveries.into_keys().collect();
    let want = expected();
    assert_eq!(
        got,
        want,
        "unexpected: {:?}\nmissing: {:?}\n{}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>(),
        s.logs()
    );
}

/// The workers' reports, which the operator copies into status, agree with what was
/// delivered: postings listed per source, and per subscription its notices (exactly)
/// and at least as many matches.
async fn assert_reports(s: &Scenario) {
    let client = async_nats::connect(&s.env.nats_url).await.expect("nats");
    let reports = async_nats::jetstream::new(client)
        .get_key_value(jobmatch_core::messages::REPORTS_BUCKET)
        .await
        .expect("reports bucket");
    let read = |key: String| {
        let reports = reports.clone();
        async move {
            let value = reports.get(&key).await.ok().flatten()?;
            serde_json::from_slice::<jobmatch_core::messages::Report>(&value).ok()
        }
    };
    for (source, postings) in [("acme", 15), ("globex", 12)] {
        let report = wait_for(
            &format!("report of {source}"),
            Duration::from_secs(30),
            || read(format!("source.{source}")),
        )
        .await;
        assert_eq!(report.postings_seen, Some(postings), "{source}: {report:?}");
        assert!(
            report.last_success.is_some() && report.last_error.is_none(),
            "{report:?}"
        );
    }
    for subscription in ["ada", "grace", "linus", "margaret"] {
        let sent = EXPECTED.iter().filter(|(s, _)| *s == subscription).count() as u64;
        let report = wait_for(
            &format!("{subscription}: {sent} notices reported"),
            Duration::from_secs(30),
            || {
                let read = read(format!("subscription.{subscription}"));
                async move { read.await.filter(|r| r.notices_sent == Some(sent)) }
            },
        )
        .await;
        assert!(
            report.matches.unwrap_or(0) >= sent,
            "{subscription}: {report:?}"
        );
        assert_eq!(report.notices_failed, None, "{subscription}: {report:?}");
    }
}

/// After a restart, waits until both boards have been polled again and the pipeline has
/// had time to act, then checks nothing new was delivered.
async fn assert_nothing_resent(s: &Scenario, before: usize) {
    let (gh, lv) = (s.boards.hits(GREENHOUSE_PATH), s.boards.hits(LEVER_PATH));
    wait_for(
        "both boards to be polled again",
        Duration::from_secs(60),
        || {
            let polled =
                s.boards.hits(GREENHOUSE_PATH) >= gh + 2 && s.boards.hits(LEVER_PATH) >= lv + 2;
            async move { polled.then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        s.delivered_count(),
        before,
        "notices were sent again after a restart\n{}",
        s.logs()
    );
    let twice: Vec<_> = s.deliveries().into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(twice.is_empty(), "notices sent twice: {twice:?}");
}

async fn stop_all(procs: Vec<Proc>) {
    for p in procs {
        let name = p.name.clone();
        let status = p.stop().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{name} did not stop cleanly: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn all_roles_in_one_process() {
    let s = Scenario::start(&MIN_SCORES).await;
    let config = s.config_arg();
    let mut procs = vec![s.env.spawn(&["all", "-f", &config], &s.log("all"))];
    assert_notices(&s, &mut procs).await;
    assert_reports(&s).await;
    let before = s.delivered_count();
    stop_all(procs).await;

    let _restarted = s
        .env
        .spawn(&["all", "-f", &config], &s.log("all-restarted"));
    assert_nothing_resent(&s, before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_in_its_own_process() {
    let s = Scenario::start(&MIN_SCORES).await;
    let config = s.config_arg();
    let apply = s
        .env
        .command(&["apply", "-f", &config], &s.log("apply"))
        .status()
        .await
        .expect("jobmatch apply");
    assert!(apply.success(), "jobmatch apply failed\n{}", s.logs());
    let roles = ["fetcher", "embedder", "matcher", "notifier"];
    let spawn_roles = |suffix: &str| -> Vec<Proc> {
        roles
            .iter()
            .map(|role| s.env.spawn(&[role], &s.log(&format!("{role}{suffix}"))))
            .collect()
    };
    let mut procs = spawn_roles("");
    assert_notices(&s, &mut procs).await;
    assert_reports(&s).await;
    let before = s.delivered_count();
    stop_all(procs).await;

    let _restarted = spawn_roles("-restarted");
    assert_nothing_resent(&s, before).await;
}
