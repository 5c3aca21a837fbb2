//! Every connector against fixtures in its board's real shape, served over loopback
//! HTTP: every normalized field of every posting is compared with a reviewed expected
//! file (`tests/fixtures/boards/expected/<source>.json`; `JOBMATCH_UPDATE_EXPECTED=1`
//! rewrites them), and each board's quirks are asserted by name. Then politeness on the
//! wire (conditional GET, `Retry-After`, `User-Agent`), dedup across boards and
//! re-posts, and bad input.

use std::time::Duration;

use jobmatch_core::messages::{PollCounts, SourceConfig};
use jobmatch_core::{JobSourceSpec, Posting, Workplace};
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::fixture;
use jobmatch_workers::fetch::http::BoardClient;
use jobmatch_workers::fetch::publish::{DrySink, SharedIndex, apply};
use jobmatch_workers::fetch::{Poll, PollError, poll};

fn source(name: &str, board: serde_json::Value, base: &str) -> SourceConfig {
    let mut spec = serde_json::json!({"board": board, "interval": "6h"});
    if board["url"].is_null() {
        spec["baseUrl"] = base.into();
    }
    let spec: JobSourceSpec = serde_json::from_value(spec).expect("spec");
    jobmatch_core::validate::source_config(name, spec).expect("valid source")
}

fn client() -> BoardClient {
    BoardClient::new(Duration::from_secs(10)).expect("client")
}

async fn poll_ok(server: &BoardServer, name: &str, board: serde_json::Value) -> Poll {
    let source = source(name, board, &server.url);
    poll(&client(), &source, None)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares every field of every posting with the expected file.
fn assert_expected(name: &str, postings: &[Posting]) {
    let path = fixture(&format!("boards/expected/{name}.json"));
    let actual = serde_json::to_string_pretty(postings).expect("json") + "\n";
    if std::env::var_os("JOBMATCH_UPDATE_EXPECTED").is_some() {
        std::fs::write(&path, &actual).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    let (want, got): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&expected).unwrap_or_default(),
        serde_json::from_str(&actual).expect("json"),
    );
    if want != got {
        panic!("{name}: postings differ from {}:\n{actual}", path.display());
    }
}

fn by_id<'a>(poll: &'a Poll, id: &str) -> &'a Posting {
    poll.postings
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| {
            panic!(
                "no posting {id} among {:?}",
                poll.postings.iter().map(|p| &p.id).collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn greenhouse_and_lever() {
    let server = BoardServer::start().await;
    let gh = poll_ok(
        &server,
        "acme",
        serde_json::json!({"kind": "greenhouse", "token": "acme"}),
    )
    .await;
    assert_eq!(gh.postings.len(), 15);
    let p = by_id(&gh, "greenhouse:acme:4012001");
    assert_eq!(p.company, "Acme Payments");
    assert_eq!(p.seniority.as_deref(), Some("senior"));
    assert!(
        p.description.contains("Acme & you:"),
        "entities decoded twice over: {}",
        p.description
    );
    assert_expected("greenhouse-acme", &gh.postings);

    let lever = poll_ok(
        &server,
        "globex",
        serde_json::json!({"kind": "lever", "site": "globex", "region": "eu"}),
    )
    .await;
    assert_eq!(lever.postings.len(), 12);
    assert_expected("lever-globex", &lever.postings);
}

#[tokio::test]
async fn ashby_skips_unlisted_jobs_and_reads_compensation() {
    let server = BoardServer::start().await;
    let poll = poll_ok(
        &server,
        "nimbus",
        serde_json::json!({"kind": "ashby", "name": "nimbus"}),
    )
    .await;
    let ids: Vec<&str> = poll.postings.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(!ids.iter().any(|id| id.contains("unlisted")), "{ids:?}");
    let infra = by_id(&poll, "ashby:nimbus:7f3c1a52-9d1e-4c8b-a1f0-2b6e9d4c0a11");
    assert_eq!(infra.workplace, Workplace::Hybrid);
    assert_eq!(infra.locations, ["Amsterdam", "Rotterdam"]);
    let salary = infra.salary.as_ref().expect("salary");
    assert_eq!(
        (
            salary.min,
            salary.max,
            salary.currency.as_deref(),
            salary.interval.as_deref()
        ),
        (Some(85000.0), Some(105000.0), Some("EUR"), Some("year"))
    );
    assert_eq!(infra.employment_type.as_deref(), Some("full-time"));
    let designer = by_id(&poll, "ashby:nimbus:0b9e55d2-3f47-4a3c-9b55-6c1d2e8f7a22");
    assert_eq!(designer.workplace, Workplace::Remote);
    assert_eq!(
        designer.description, "Design the console our customers live in.",
        "HTML used when plain is empty"
    );
    assert_expected("ashby-nimbus", &poll.postings);
}

#[tokio::test]
async fn smartrecruiters_lists_then_reads_each_detail() {
    let server = BoardServer::start().await;
    let poll = poll_ok(
        &server,
        "bosch",
        serde_json::json!({"kind": "smartrecruiters", "company": "bosch"}),
    )
    .await;
    assert_eq!(poll.postings.len(), 3);
    assert_eq!(poll.requests, 4, "one listing and three details");
    let p = by_id(&poll, "smartrecruiters:bosch:744000012345678");
    assert_eq!(p.company, "Bosch Group");
    assert_eq!(p.workplace, Workplace::Hybrid);
    assert_eq!(p.seniority.as_deref(), Some("senior"));
    assert!(
        p.description
            .starts_with("Job Description\n* You develop AUTOSAR software"),
        "{}",
        p.description
    );
    assert!(
        p.url
            .ends_with("744000012345678-senior-embedded-software-engineer-f-m-div-"),
        "{}",
        p.url
    );
    let student = by_id(&poll, "smartrecruiters:bosch:744000087654321");
    assert_eq!(
        (
            student.employment_type.as_deref(),
            student.seniority.as_deref()
        ),
        (Some("internship"), Some("intern"))
    );
    assert_expected("smartrecruiters-bosch", &poll.postings);
}

#[tokio::test]
async fn workable_hides_hidden_locations() {
    let server = BoardServer::start().await;
    let poll = poll_ok(
        &server,
        "orbit",
        serde_json::json!({"kind": "workable", "account": "orbit"}),
    )
    .await;
    let p = by_id(&poll, "workable:orbit:A1B2C3D4E5");
    assert_eq!(p.company, "Orbit Analytics");
    assert_eq!(
        p.locations,
        ["Athens, Attica, Greece", "Limassol, Limassol, Cyprus"]
    );
    assert_eq!(
        by_id(&poll, "workable:orbit:F6G7H8J9K0").workplace,
        Workplace::Remote
    );
    assert_expected("workable-orbit", &poll.postings);
}

#[tokio::test]
async fn remoteok_skips_the_legal_notice_and_repairs_mojibake() {
    let server = BoardServer::start().await;
    let poll = poll_ok(&server, "remoteok", serde_json::json!({"kind": "remoteok"})).await;
    assert_eq!(
        poll.postings.len(),
        3,
        "legal notice and one malformed job left out"
    );
    assert_eq!(poll.skipped.len(), 1);
    assert_eq!(
        poll.skipped[0].location, "[4].position",
        "{:?}",
        poll.skipped
    );
    let zurich = by_id(&poll, "remoteok:remoteok.com:1093002");
    assert_eq!(zurich.company, "Zürich Labs");
    assert_eq!(zurich.title, "DevOps Engineer – Platform");
    assert!(
        zurich
            .description
            .starts_with("We’re a small team in Zürich."),
        "{}",
        zurich.description
    );
    assert_eq!(zurich.salary, None, "0 means unknown");
    assert_eq!(
        by_id(&poll, "remoteok:remoteok.com:1093003")
            .salary
            .as_ref()
            .and_then(|s| s.min),
        Some(140000.0)
    );
    assert_expected("remoteok", &poll.postings);
}

#[tokio::test]
async fn remotive_arbeitnow_and_hacker_news() {
    let server = BoardServer::start().await;
    let remotive = poll_ok(&server, "remotive", serde_json::json!({"kind": "remotive"})).await;
    let p = by_id(&remotive, "remotive:remotive.com:2010001");
    let salary = p.salary.as_ref().expect("salary from free text");
    assert_eq!(
        (salary.min, salary.max, salary.currency.as_deref()),
        (Some(140000.0), Some(170000.0), Some("USD"))
    );
    assert_eq!(
        p.posted_at.map(|t| t.unix_timestamp()),
        Some(1_793_614_272),
        "a time without offset is UTC"
    );
    assert_expected("remotive", &remotive.postings);

    let arbeitnow = poll_ok(
        &server,
        "arbeitnow",
        serde_json::json!({"kind": "arbeitnow"}),
    )
    .await;
    assert_eq!(arbeitnow.requests, 2, "both pages");
    assert_eq!(arbeitnow.postings.len(), 3);
    assert_eq!(arbeitnow.skipped.len(), 1);
    assert_eq!(arbeitnow.skipped[0].location, "data[1].company_name");
    assert_eq!(
        by_id(
            &arbeitnow,
            "arbeitnow:arbeitnow.com:werkstudent-softwareentwicklung-berlin-123456"
        )
        .employment_type
        .as_deref(),
        Some("internship")
    );
    assert_expected("arbeitnow", &arbeitnow.postings);

    let hn = poll_ok(&server, "hn", serde_json::json!({"kind": "hackernews"})).await;
    assert_eq!(
        server.requests("/api/v1/items/45000001").len(),
        1,
        "the November 'Who is hiring?' thread, not 'Who wants to be hired?'"
    );
    assert_eq!(hn.postings.len(), 3, "{:?}", hn.postings);
    assert_eq!(
        hn.skipped.len(),
        1,
        "the chatty comment is reported: {:?}",
        hn.skipped
    );
    let tide = by_id(&hn, "hackernews:whoishiring:45000101");
    assert_eq!(
        (tide.company.as_str(), tide.title.as_str()),
        ("Tidewater Robotics", "Senior Rust Engineer")
    );
    assert_eq!(tide.locations, ["Oslo, Norway", "EU"]);
    assert_eq!(tide.workplace, Workplace::Remote);
    assert_eq!(tide.employment_type.as_deref(), Some("full-time"));
    assert_eq!(tide.salary.as_ref().and_then(|s| s.max), Some(120000.0));
    assert_eq!(tide.url, "https://news.ycombinator.com/item?id=45000101");
    let ledgerly = by_id(&hn, "hackernews:whoishiring:45000102");
    assert_eq!(
        (ledgerly.company.as_str(), ledgerly.workplace),
        ("Ledgerly", Workplace::Hybrid)
    );
    assert_expected("hackernews", &hn.postings);
}

#[tokio::test]
async fn feeds_and_career_pages() {
    let server = BoardServer::start().await;
    let rss = poll_ok(
        &server,
        "rust-feed",
        serde_json::json!({"kind": "feed", "url": format!("{}/feeds/remote.rss", server.url)}),
    )
    .await;
    assert_eq!(rss.postings.len(), 2);
    assert_eq!(rss.skipped.len(), 1, "the item without a title");
    let ferrous = &rss.postings[0];
    assert_eq!(
        (ferrous.company.as_str(), ferrous.title.as_str()),
        ("Ferrous Systems", "Rust Trainer & Consultant")
    );
    assert_eq!(rss.postings[1].company, "Oxide Robotics", "dc:creator");
    assert_eq!(rss.postings[1].workplace, Workplace::Remote);
    assert_expected("feed-remote", &rss.postings);

    let atom = poll_ok(&server, "helix", serde_json::json!({"kind": "feed", "url": format!("{}/feeds/helix.atom", server.url), "company": "Helix"})).await;
    assert_eq!(atom.postings.len(), 2);
    assert!(atom.postings.iter().all(|p| p.company == "Helix"));
    assert_eq!(atom.postings[0].workplace, Workplace::Hybrid);
    assert_expected("feed-helix", &atom.postings);

    let page = poll_ok(
        &server,
        "kestrel",
        serde_json::json!({"kind": "careerpage", "url": format!("{}/careers/kestrel", server.url)}),
    )
    .await;
    assert_eq!(
        page.postings.len(),
        2,
        "the posting past validThrough is left out"
    );
    let grid = by_id(&page, "careerpage:127.0.0.1:KE-2026-041");
    assert_eq!(grid.company, "Kestrel Energy Ltd");
    assert_eq!(
        grid.locations,
        ["Manchester, Greater Manchester, GB", "Leeds, GB"]
    );
    assert_eq!(grid.employment_type.as_deref(), Some("full-time"));
    let analyst = page
        .postings
        .iter()
        .find(|p| p.title == "Remote Data Analyst")
        .expect("analyst");
    assert_eq!(analyst.workplace, Workplace::Remote, "TELECOMMUTE");
    assert_eq!(
        analyst.salary.as_ref().map(|s| (s.min, s.interval.clone())),
        Some((Some(32.0), Some("hour".into())))
    );
    assert_expected("careerpage-kestrel", &page.postings);
}

#[tokio::test]
async fn conditional_get_retry_after_and_user_agent_on_the_wire() {
    let server = BoardServer::start().await;
    let client = client();
    let etag = source(
        "etag",
        serde_json::json!({"kind": "greenhouse", "token": "etag"}),
        &server.url,
    );
    let first = poll(&client, &etag, None).await.expect("first poll");
    assert_eq!(first.postings.len(), 15);
    let validators = first.validators.clone().expect("the board sent an ETag");
    let second = poll(&client, &etag, Some(&validators))
        .await
        .expect("second poll");
    assert!(second.not_modified && second.postings.is_empty());
    assert_eq!(second.http_status, Some(304));
    let requests = server.requests("/v1/boards/etag/jobs");
    assert_eq!(requests[0].if_none_match, None);
    assert_eq!(requests[1].if_none_match, validators.etag);
    assert!(
        requests[0]
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("jobmatch/")),
        "{:?}",
        requests[0].user_agent
    );

    let throttled = source(
        "throttled",
        serde_json::json!({"kind": "greenhouse", "token": "throttled"}),
        &server.url,
    );
    let polled = poll(&client, &throttled, None)
        .await
        .expect("succeeds after waiting");
    assert_eq!(polled.postings.len(), 15);
    let requests = server.requests("/v1/boards/throttled/jobs");
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "Retry-After: 2 honoured, waited {waited:?}"
    );

    // Paged boards are never skipped on a 304: Lever makes one request here, and
    // Arbeitnow's two pages keep no validators.
    let arbeitnow = poll_ok(
        &server,
        "arbeitnow",
        serde_json::json!({"kind": "arbeitnow"}),
    )
    .await;
    assert_eq!(arbeitnow.validators, None);
}

#[tokio::test]
async fn same_job_on_two_boards_is_one_posting_and_a_repost_is_flagged() {
    let server = BoardServer::start().await;
    let client = client();
    let index = SharedIndex::default();
    let acme = source(
        "acme",
        serde_json::json!({"kind": "greenhouse", "token": "acme"}),
        &server.url,
    );
    let remoteok = source(
        "remoteok",
        serde_json::json!({"kind": "remoteok"}),
        &server.url,
    );
    let first = poll(&client, &acme, None).await.expect("poll");
    let counts = apply(&DrySink, &index, "acme", &first)
        .await
        .expect("apply");
    assert_eq!(
        counts,
        PollCounts {
            new: 15,
            ..PollCounts::default()
        }
    );
    let remote = poll(&client, &remoteok, None).await.expect("poll");
    let counts = apply(&DrySink, &index, "remoteok", &remote)
        .await
        .expect("apply");
    assert_eq!(
        (counts.new, counts.duplicates, counts.malformed),
        (2, 1, 1),
        "{counts:?}"
    );
    assert_eq!(
        index
            .lock()
            .get("remoteok:remoteok.com:1093001")
            .and_then(|r| r.duplicate_of)
            .as_deref(),
        Some("greenhouse:acme:4012001")
    );

    // The board re-posts job 4012001 under a new id with the same text, edits another,
    // and drops a third.
    let mut board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("boards/greenhouse-acme.json")).expect("fixture"),
    )
    .expect("json");
    let jobs = board["jobs"].as_array_mut().expect("jobs");
    let mut repost = jobs[0].clone();
    repost["id"] = 4012999.into();
    repost["title"] = "Rust Backend Engineer, Payments".into();
    jobs.remove(0);
    jobs[0]["title"] = "Principal Software Engineer, Distributed Systems".into();
    let dropped = jobs.remove(1);
    jobs.push(repost);
    server.set_greenhouse("acme", board.to_string());
    let second = poll(&client, &acme, None).await.expect("poll");
    let counts = apply(&DrySink, &index, "acme", &second)
        .await
        .expect("apply");
    assert_eq!(
        counts,
        PollCounts {
            updated: 1,
            unchanged: 12,
            closed: 2,
            reposts: 1,
            ..PollCounts::default()
        },
        "4012001 and {} closed, 4012999 a re-post",
        dropped["id"]
    );
    assert_eq!(
        index
            .lock()
            .get("greenhouse:acme:4012999")
            .and_then(|r| r.repost_of)
            .as_deref(),
        Some("greenhouse:acme:4012001")
    );
    // With the Greenhouse original closed, the RemoteOK copy carries the job: published.
    let remote = poll(&client, &remoteok, None).await.expect("poll");
    let counts = apply(&DrySink, &index, "remoteok", &remote)
        .await
        .expect("apply");
    assert_eq!(
        (counts.updated, counts.duplicates, counts.unchanged),
        (1, 0, 2),
        "{counts:?}"
    );
}

#[tokio::test]
async fn bad_input_is_a_named_error_never_a_crash() {
    let server = BoardServer::start().await;
    let client = client();
    let cases: [(&str, serde_json::Value, &str, &str); 6] = [
        (
            "broken-json",
            serde_json::json!({"kind": "greenhouse", "token": "broken-json"}),
            "parse",
            "EOF while parsing",
        ),
        (
            "wrong-types",
            serde_json::json!({"kind": "greenhouse", "token": "wrong-types"}),
            "parse",
            "jobs: invalid type: string \"all of them\", expected a sequence",
        ),
        (
            "invalid-utf8",
            serde_json::json!({"kind": "greenhouse", "token": "invalid-utf8"}),
            "parse",
            "invalid unicode code point",
        ),
        (
            "huge",
            serde_json::json!({"kind": "greenhouse", "token": "huge"}),
            "too_large",
            "larger than 33554432 bytes",
        ),
        (
            "error500",
            serde_json::json!({"kind": "greenhouse", "token": "error500"}),
            "http_status",
            "HTTP 500",
        ),
        (
            "missing",
            serde_json::json!({"kind": "greenhouse", "token": "no-such-board"}),
            "http_status",
            "HTTP 404",
        ),
    ];
    for (name, board, category, message) in cases {
        let source = source(name, board, &server.url);
        let err: PollError = poll(&client, &source, None).await.expect_err(name);
        assert_eq!(err.category(), category, "{name}: {err}");
        assert!(err.to_string().contains(message), "{name}: {err}");
    }
    let deep = source(
        "deep",
        serde_json::json!({"kind": "careerpage", "url": format!("{}/careers/deep", server.url)}),
        &server.url,
    );
    let poll = poll(&client, &deep, None).await.expect("deep HTML parses");
    assert_eq!(poll.postings.len(), 1);
    assert_eq!(poll.postings[0].title, "Deep Engineer");
}

#[test]
fn the_documented_sources_load_one_per_board_kind() {
    let path = jobmatch_e2e::repo_root().join("docs/job-sources.yaml");
    let loaded = jobmatch_workers::config::load_paths(&[path]);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let mut kinds: Vec<&str> = loaded.sources.iter().map(|s| s.spec.board.kind()).collect();
    kinds.sort();
    let mut all: Vec<&str> = jobmatch_core::source::BOARD_KINDS
        .iter()
        .map(|k| k.kind)
        .collect();
    all.sort();
    assert_eq!(kinds, all);
}

#[test]
fn remotive_refuses_intervals_its_terms_forbid() {
    let spec: JobSourceSpec = serde_json::from_value(serde_json::json!({
        "board": {"kind": "remotive"}, "interval": "1h"
    }))
    .expect("spec");
    let err = jobmatch_core::validate::source_config("remotive", spec).expect_err("refused");
    assert_eq!(err.field, "spec.interval");
    assert_eq!(err.message, "must be at least 6h for a remotive board");
}
