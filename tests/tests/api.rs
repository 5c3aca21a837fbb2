//! The REST API of a real jobmatch (real nats-server, the real model, a real SMTP
//! server, a board served over loopback), over HTTP, twice: as `jobmatch all` and as
//! separate `fetcher`, `embedder`, `matcher`, `notifier` and `api` processes. Every
//! endpoint's success and error paths; a job added through `/job/add` reaching the
//! right subscriber's inbox exactly once; both searches ranking a labelled set in the
//! expected order; a deleted resume gone from the store's files; tokens and scopes;
//! the limits (413, 422, 503 with `Retry-After`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jobmatch_core::ids::kv_key;
use jobmatch_e2e::boards::BoardServer;
use jobmatch_e2e::mail::read_maildir;
use jobmatch_e2e::process::{JobmatchEnv, Nats, Proc, Smtp};
use jobmatch_e2e::{free_port, metric_sum, wait_for};
use serde_json::{Value, json};

const WRITE: &str = "w-3c1f9a0e2b";
const READ: &str = "r-77d0c4a91e";

struct Api {
    base: String,
    client: reqwest::Client,
    smtp: Smtp,
    boards: BoardServer,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    _procs: Vec<Proc>,
    _nats: Nats,
}

/// One subscriber per kind of work, each with a term rule, so what reaches whom is
/// decided by the rules and not by where a score falls.
const CONFIG: &str = r#"
apiVersion: jobmatch.dev/v1alpha1
kind: JobSource
metadata: {name: acme}
spec:
  board: {kind: greenhouse, token: acme}
  baseUrl: ${BOARD}
  interval: 1h
  # Nothing of this board enters the pipeline: the jobs under test come from the API.
  titleIncludes: [no-title-has-this]
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: ada}
spec:
  resume: {text: "Backend engineer, 6 years of Rust, Tokio and Kubernetes; event-driven services and APIs."}
  criteria: {mustHave: [rust], minScore: 0.1}
  notify: {email: {to: ada@example.com}}
---
apiVersion: jobmatch.dev/v1alpha1
kind: MatchSubscription
metadata: {name: paul}
spec:
  resume: {text: "Pastry chef and baker: croissants, bread, cakes; I run a pastry kitchen."}
  criteria: {mustHave: [pastry], minScore: 0.1}
  notify: {email: {to: paul@example.com}}
"#;

impl Api {
    async fn start(separate: bool) -> Self {
        let nats = Nats::start().await;
        let smtp = Smtp::start().await;
        let boards = BoardServer::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, CONFIG.replace("${BOARD}", &boards.url)).expect("config");
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, format!("# test tokens\n{WRITE}\n{READ} read\n")).expect("tokens");
        let env = JobmatchEnv {
            nats_url: nats.url.clone(),
            smtp_url: Some(smtp.url.clone()),
            data_dir: dir.path().join("data"),
        };
        let listen = format!("127.0.0.1:{}", free_port());
        let config_arg = config.display().to_string();
        let spawn = |args: &[&str], log: &str| {
            let mut command = env.command(args, &dir.path().join(log));
            command
                .env("JOBMATCH_API_TOKENS", &tokens)
                .env("JOBMATCH_API_MAX_BODY_BYTES", "65536")
                .env("JOBMATCH_API_MAX_TEXT_BYTES", "8192")
                .env("JOBMATCH_API_MAX_CONCURRENT", "4")
                .env("JOBMATCH_EMBED_MAX_INPUTS", "40");
            Proc::spawn(&format!("jobmatch {}", args.join(" ")), &mut command)
        };
        let procs = if separate {
            vec![
                spawn(&["fetcher", "-f", &config_arg], "fetcher.log"),
                spawn(&["embedder"], "embedder.log"),
                spawn(&["matcher"], "matcher.log"),
                spawn(&["notifier"], "notifier.log"),
                spawn(&["api", "--listen", &listen], "api.log"),
            ]
        } else {
            vec![spawn(
                &["all", "-f", &config_arg, "--listen", &listen],
                "all.log",
            )]
        };
        jobmatch_workers::tls::install_crypto_provider();
        let api = Self {
            base: format!("http://{listen}"),
            client: reqwest::Client::new(),
            smtp,
            boards,
            data_dir: dir.path().join("data"),
            dir,
            _procs: procs,
            _nats: nats,
        };
        // Ready when an embedding comes back: the api and an embedder both answer.
        let url = format!("{}/api/embed", api.base);
        wait_for("the API to embed", Duration::from_secs(90), || async {
            let response = api
                .client
                .post(&url)
                .bearer_auth(READ)
                .json(&json!({"text": "warm"}))
                .send()
                .await;
            matches!(response, Ok(r) if r.status() == 200).then_some(())
        })
        .await;
        api
    }

    async fn post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    /// POSTs and asserts the status.
    async fn expect(&self, path: &str, token: &str, body: Value, status: u16) -> Value {
        let (got, _, answer) = self.post(path, token, body.clone()).await;
        assert_eq!(got, status, "{path} {body}: {answer}\n{}", self.logs());
        answer
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("==> {}\n", path.display()));
                for line in tail.into_iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Mails received, by (recipient's subscription, posting id).
    fn mails(&self, ids: &[&str]) -> BTreeMap<(String, String), usize> {
        let keys: BTreeMap<String, String> = ids
            .iter()
            .map(|id| (kv_key(&format!("api:{id}")), id.to_string()))
            .collect();
        let mut out = BTreeMap::new();
        for mail in read_maildir(&self.smtp.maildir) {
            let key = mail.header("x-jobmatch-notice").unwrap_or_default();
            let (subscription, digest) = key.split_once('.').unwrap_or((key, ""));
            let job = keys
                .get(digest)
                .cloned()
                .unwrap_or_else(|| format!("?{digest}"));
            *out.entry((subscription.to_owned(), job)).or_default() += 1;
        }
        out
    }

    async fn search_ids(&self, body: Value) -> Vec<String> {
        let answer = self.expect("/job/search", READ, body, 200).await;
        ids_of(&answer, "posting")
    }
}

fn ids_of(answer: &Value, what: &str) -> Vec<String> {
    answer["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h[what]["id"].as_str())
                .map(|id| id.trim_start_matches("api:").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The labelled set: two Rust backend jobs, then work further and further from them.
fn jobs() -> Vec<Value> {
    vec![
        json!({"id": "rust-berlin", "title": "Senior Rust Backend Engineer", "company": "Ferrous Systems",
               "locations": ["Berlin, Germany"], "workplace": "hybrid",
               "description": "Build event-driven backend services in Rust with Tokio, PostgreSQL and NATS, running on Kubernetes.",
               "salary": {"min": 80000, "max": 100000, "currency": "EUR", "interval": "year"},
               "employmentType": "full-time", "url": "https://jobs.example.com/rust-berlin"}),
        json!({"id": "rust-remote", "title": "Backend Engineer (Rust, Go)", "company": "Oxide Labs",
               "locations": ["Remote - Europe"],
               "description": "Design APIs and distributed systems in Rust and Go; run them on Kubernetes with Prometheus."}),
        json!({"id": "frontend", "title": "Frontend Developer", "company": "Pixel Studio",
               "locations": ["Remote"], "workplace": "remote",
               "description": "Build accessible user interfaces in React and TypeScript with our designers."}),
        json!({"id": "chef", "title": "Pastry Chef", "company": "Boulangerie Paul",
               "locations": ["Lyon, France"], "workplace": "onsite",
               "description": "Bake croissants, bread and cakes every morning and run the pastry kitchen."}),
        json!({"id": "nurse", "title": "Registered Nurse", "company": "City Hospital",
               "locations": ["Hamburg"], "workplace": "onsite",
               "description": "Care for patients on the cardiology ward, including night shifts."}),
    ]
}

const ALL_IDS: [&str; 6] = [
    "rust-berlin",
    "rust-remote",
    "frontend",
    "chef",
    "nurse",
    "rust-berlin-again",
];

const RUST_RESUME: &str =
    "Backend engineer with six years of Rust: Tokio services, Kubernetes, PostgreSQL and NATS.";

async fn access_is_by_token_and_scope(api: &Api) {
    let body = json!({"text": "x"});
    let (status, headers, answer) = api.post("/api/embed", "", body.clone()).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    assert_eq!(answer["error_type"], "Unauthorized");
    api.expect("/api/embed", "wrong-token", body.clone(), 401)
        .await;
    api.expect("/api/embed", READ, body.clone(), 200).await;
    api.expect("/api/embed", WRITE, body, 200).await;
    let forbidden = api
        .expect("/job/add", READ, json!({"title": "t", "company": "c"}), 403)
        .await;
    assert_eq!(forbidden["error_type"], "Forbidden");
    api.expect("/fetch", READ, json!({"source": "acme"}), 403)
        .await;
    api.expect("/resume/delete", "", json!({"id": "x"}), 401)
        .await;
    // The document is public.
    let doc: Value = api
        .client
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    for path in [
        "/job/add",
        "/job/search",
        "/resume/search",
        "/fetch",
        "/api/batch-embed",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }
}

async fn limits_answer_413_422_and_503(api: &Api) {
    let too_big = "x".repeat(70_000);
    api.expect("/api/embed", READ, json!({"text": too_big}), 413)
        .await;
    let too_many = vec!["x"; 41];
    let answer = api
        .expect("/api/batch-embed", READ, json!({"texts": too_many}), 413)
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 40"),
        "{answer}"
    );
    let answer = api
        .expect("/api/batch-embed", READ, json!({"texts": ["ok", ""]}), 422)
        .await;
    assert_eq!(answer["error"], "texts[1]: empty");
    let long = "word ".repeat(2000);
    let answer = api
        .expect("/job/search", READ, json!({"text": long}), 422)
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("text: 10000 bytes"),
        "{answer}"
    );
    let answer = api
        .expect("/job/search", READ, json!({"text": "x", "limit": 0}), 422)
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("limit:"),
        "{answer}"
    );
    api.expect("/job/search", READ, json!({}), 422).await;
    api.expect(
        "/job/search",
        READ,
        json!({"text": "x", "vector": [0.1]}),
        422,
    )
    .await;
    let answer = api
        .expect("/job/search", READ, json!({"vector": [0.1, 0.2]}), 422)
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("vector: 2 dimensions"),
        "{answer}"
    );
    api.expect(
        "/job/search",
        READ,
        json!({"text": "x", "criteria": {"minScroe": 1}}),
        422,
    )
    .await;
    // A flood: at most 4 requests are served at once, the rest are shed with 503. Each
    // request is short work (well under a second here), so the ones served finish far
    // inside every timeout even on a loaded machine, yet all 24 arrive while the first
    // four are still being embedded.
    let texts: Vec<String> = (0..40)
        .map(|i| format!("flood text number {i} {}", "word ".repeat(20)))
        .collect();
    let flood =
        (0..24).map(|_| api.post("/api/batch-embed", READ, json!({"texts": texts.clone()})));
    let answers = futures::future::join_all(flood).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    let shed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!shed.is_empty(), "no request shed: {statuses:?}");
    assert!(statuses.contains(&200), "nothing served: {statuses:?}");
    // Besides served and shed, only the embedder's own "busy" (429) or, on a very loaded
    // machine, a timeout (504) may come back.
    assert!(
        statuses.iter().all(|s| [200, 429, 503, 504].contains(s)),
        "{statuses:?}"
    );
    for (_, headers, body) in shed {
        assert_eq!(
            headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{body}"
        );
        assert_eq!(body["error_type"], "Overloaded", "{body}");
    }
}

async fn embedding_endpoints_answer(api: &Api) {
    let one = api
        .expect(
            "/api/embed",
            READ,
            json!({"text": "Senior Rust engineer"}),
            200,
        )
        .await;
    assert_eq!(one["dimension"], 384);
    assert_eq!(one["embedding"].as_array().map(Vec::len), Some(384));
    let many = api
        .expect(
            "/api/batch-embed",
            READ,
            json!({"texts": ["a", "b", "Senior Rust engineer"]}),
            200,
        )
        .await;
    assert_eq!(many["embeddings"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        many["embeddings"][2], one["embedding"],
        "the same text, the same vector"
    );
    let tei = api
        .expect(
            "/embed",
            READ,
            json!({"inputs": "Senior Rust engineer"}),
            200,
        )
        .await;
    assert_eq!(tei[0], one["embedding"]);
    // Over 32 texts, split across several requests to the embedders: order is kept.
    let texts: Vec<String> = (0..35).map(|i| format!("text {i}")).collect();
    let split = api
        .expect("/api/batch-embed", READ, json!({"texts": texts}), 200)
        .await;
    let last = api
        .expect("/api/embed", READ, json!({"text": "text 34"}), 200)
        .await;
    assert_eq!(split["embeddings"][34], last["embedding"]);
}

async fn jobs_are_added_searched_and_notified_once(api: &Api) {
    for job in jobs() {
        let answer = api.expect("/job/add", WRITE, job.clone(), 201).await;
        assert_eq!(answer["outcome"], "new", "{answer}");
        assert_eq!(
            answer["id"],
            format!("api:{}", job["id"].as_str().unwrap_or_default())
        );
    }
    // Errors: an existing id, an unknown one, missing and bad fields.
    api.expect("/job/add", WRITE, jobs()[0].clone(), 409).await;
    let mut unknown = jobs()[0].clone();
    unknown["id"] = json!("nobody-added-this");
    api.expect("/job/update", WRITE, unknown, 404).await;
    let answer = api
        .expect("/job/add", WRITE, json!({"company": "c"}), 422)
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("title"),
        "{answer}"
    );
    let answer = api
        .expect(
            "/job/add",
            WRITE,
            json!({"title": "t", "company": "c", "seniority": "wizard"}),
            422,
        )
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("seniority:"),
        "{answer}"
    );
    api.expect(
        "/job/update",
        WRITE,
        json!({"title": "t", "company": "c"}),
        422,
    )
    .await;
    // A generated id.
    let generated = api
        .expect(
            "/job/add",
            WRITE,
            json!({"title": "Night Porter", "company": "Hotel Astoria", "locations": ["Vienna"]}),
            201,
        )
        .await;
    let generated_id = generated["id"].as_str().unwrap_or_default().to_owned();
    assert!(
        generated_id.starts_with("api:") && generated_id.len() > 20,
        "{generated}"
    );
    api.expect("/job/delete", WRITE, json!({"id": generated_id}), 200)
        .await;

    // Searchable once embedded and stored: each job found by its own text first (the
    // pipeline stores them one by one, so a ranking taken before the last is stored
    // would miss it).
    for job in jobs() {
        let id = job["id"].as_str().unwrap_or_default().to_owned();
        let own = json!({
            "text": format!("{} {}", job["title"].as_str().unwrap_or_default(), job["description"].as_str().unwrap_or_default()),
            "criteria": {"minScore": 0.0},
            "limit": 10,
        });
        wait_for(
            &format!("{id} to be searchable"),
            Duration::from_secs(60),
            || async {
                api.search_ids(own.clone())
                    .await
                    .contains(&id)
                    .then_some(())
            },
        )
        .await;
    }
    let query = json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0}, "limit": 10});
    let ranked = wait_for(
        "the added jobs to be searchable",
        Duration::from_secs(60),
        || async {
            let ids = api.search_ids(query.clone()).await;
            (ids.len() >= 4).then_some(ids)
        },
    )
    .await;
    let position = |id: &str| ranked.iter().position(|r| r == id).unwrap_or(usize::MAX);
    assert!(
        position("rust-berlin") < 2 && position("rust-remote") < 2,
        "{ranked:?}"
    );
    for far in ["chef", "nurse"] {
        assert!(position("frontend") < position(far), "{ranked:?}");
    }
    // Scores and explanations come with every hit.
    let answer = api.expect("/job/search", READ, query.clone(), 200).await;
    let first = &answer["hits"][0];
    assert!(first["score"].as_f64().unwrap_or_default() > 0.3, "{first}");
    assert_eq!(first["score"], first["explanation"]["score"]);
    // The same search by vector ranks the same.
    let vector = api
        .expect("/api/embed", READ, json!({"text": RUST_RESUME}), 200)
        .await["embedding"]
        .clone();
    let by_vector = api
        .search_ids(json!({"vector": vector, "criteria": {"minScore": 0.0}, "limit": 10}))
        .await;
    assert_eq!(by_vector, ranked);
    // Pages.
    let page = api
        .expect(
            "/job/search",
            READ,
            json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0}, "limit": 2}),
            200,
        )
        .await;
    assert_eq!(ids_of(&page, "posting"), ranked[..2].to_vec());
    assert_eq!(page["nextOffset"], 2);
    let next = api
        .search_ids(
            json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0}, "limit": 2, "offset": 2}),
        )
        .await;
    assert_eq!(next, ranked[2..4].to_vec());
    // Criteria: terms, remote.
    let kubernetes = api
        .search_ids(
            json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0, "mustHave": ["kubernetes"]}}),
        )
        .await;
    assert_eq!(
        kubernetes.iter().collect::<std::collections::BTreeSet<_>>(),
        ["rust-berlin", "rust-remote"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
    let remote = api
        .search_ids(
            json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0, "remote": "required"}}),
        )
        .await;
    assert!(
        remote.contains(&"rust-remote".to_owned()) && !remote.contains(&"rust-berlin".to_owned()),
        "{remote:?}"
    );
    // Criteria: a salary floor (only rust-berlin states one: 80-100k EUR a year), a level
    // (rust-berlin is senior by its title, rust-remote states none and passes), and a
    // bad language code named.
    let paid = api
        .search_ids(json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0,
            "minSalary": {"amount": 7500, "currency": "EUR", "period": "month"}, "requireSalary": true}}))
        .await;
    assert_eq!(paid, ["rust-berlin"]);
    let underpaid = api
        .search_ids(json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0,
            "minSalary": {"amount": 120000, "currency": "EUR"}}}))
        .await;
    assert!(
        !underpaid.contains(&"rust-berlin".to_owned())
            && underpaid.contains(&"rust-remote".to_owned()),
        "{underpaid:?}"
    );
    let junior = api
        .search_ids(
            json!({"text": RUST_RESUME, "criteria": {"minScore": 0.0, "seniority": ["junior"]}}),
        )
        .await;
    assert!(
        !junior.contains(&"rust-berlin".to_owned()) && junior.contains(&"rust-remote".to_owned()),
        "{junior:?}"
    );
    let refused = api
        .expect(
            "/job/search",
            READ,
            json!({"text": RUST_RESUME, "criteria": {"languages": ["en", "xx"]}}),
            422,
        )
        .await;
    assert!(
        refused.to_string().contains("criteria.languages[1]"),
        "{refused}"
    );
    // A baker's resume puts the pastry job first.
    let baker = api
        .search_ids(json!({"text": "Baker and pastry chef: bread, croissants and cakes.", "criteria": {"minScore": 0.0}}))
        .await;
    assert_eq!(baker.first().map(String::as_str), Some("chef"), "{baker:?}");

    // The subscribers: ada hears of the two Rust jobs, paul of the pastry job, once each.
    let expected: BTreeMap<(String, String), usize> = [
        ("ada", "rust-berlin"),
        ("ada", "rust-remote"),
        ("paul", "chef"),
    ]
    .iter()
    .map(|(s, j)| ((s.to_string(), j.to_string()), 1))
    .collect();
    wait_for(
        "the notices of the added jobs",
        Duration::from_secs(60),
        || async { (api.mails(&ALL_IDS) == expected).then_some(()) },
    )
    .await;
    // An update is matched again, a re-post under a new id is the same job: no mail more.
    let mut changed = jobs()[0].clone();
    changed["description"] = json!(
        "Build event-driven backend services in Rust with Tokio and NATS on Kubernetes, design \
         their APIs with the product team, and run them in production with Prometheus \
         dashboards and a humane on-call rotation of one week in six."
    );
    let answer = api.expect("/job/update", WRITE, changed.clone(), 200).await;
    assert_eq!(answer["outcome"], "updated", "{answer}");
    let answer = api.expect("/job/update", WRITE, changed.clone(), 200).await;
    assert_eq!(answer["outcome"], "unchanged", "{answer}");
    let mut again = changed;
    again["id"] = json!("rust-berlin-again");
    let answer = api.expect("/job/add", WRITE, again, 201).await;
    assert_eq!(answer["outcome"], "repost", "{answer}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        api.mails(&ALL_IDS),
        expected,
        "a notice repeated or went astray"
    );

    // Delete closes: the job is matched and listed no more.
    api.expect("/job/delete", WRITE, json!({"id": "chef"}), 200)
        .await;
    api.expect("/job/delete", WRITE, json!({"id": "api:chef"}), 404)
        .await;
    wait_for(
        "the closed job to leave the search",
        Duration::from_secs(30),
        || async {
            let ids = api
                .search_ids(json!({"text": "pastry chef", "criteria": {"minScore": 0.0}}))
                .await;
            (!ids.contains(&"chef".to_owned())).then_some(())
        },
    )
    .await;
}

async fn resumes_are_kept_searched_and_erased(api: &Api) {
    let pool = [
        (
            "r-rust",
            "Rust backend engineer: Tokio, Kubernetes, PostgreSQL, event-driven services. MARKER-RUST-7731",
            None,
        ),
        (
            "r-rust-remote-only",
            "Senior Rust developer, distributed systems and APIs in Rust and Go.",
            Some(json!({"remote": "required"})),
        ),
        (
            "r-baker",
            "Baker with ten years of pastry: croissants, bread and cakes.",
            None,
        ),
        (
            "r-nurse",
            "Registered nurse, cardiology ward, night shifts.",
            None,
        ),
    ];
    for (id, text, criteria) in &pool {
        let mut body = json!({"id": id, "text": text});
        if let Some(c) = criteria {
            body["criteria"] = c.clone();
        }
        let answer = api.expect("/resume/add", WRITE, body, 201).await;
        assert_eq!(answer["id"], *id);
    }
    api.expect(
        "/resume/add",
        WRITE,
        json!({"id": "r-rust", "text": "again"}),
        409,
    )
    .await;
    api.expect(
        "/resume/update",
        WRITE,
        json!({"id": "r-nobody", "text": "x"}),
        404,
    )
    .await;
    api.expect("/resume/update", WRITE, json!({"text": "x"}), 422)
        .await;
    api.expect("/resume/add", WRITE, json!({"id": "r-x", "text": " "}), 422)
        .await;
    api.expect(
        "/resume/add",
        WRITE,
        json!({"id": "r-x", "text": "x", "criteria": {"minScore": 2}}),
        422,
    )
    .await;

    // A Rust job on site in Berlin: the Rust resumes first; the one wanting remote work
    // only is left out, as its own criteria say.
    let posting = json!({"title": "Rust Backend Engineer", "company": "Ferrous Systems", "locations": ["Berlin"],
                         "workplace": "onsite", "description": "Tokio services in Rust on Kubernetes."});
    let answer = api
        .expect(
            "/resume/search",
            READ,
            json!({"posting": posting, "minScore": 0.0}),
            200,
        )
        .await;
    let ranked = ids_of(&answer, "resume");
    assert_eq!(
        ranked.first().map(String::as_str),
        Some("r-rust"),
        "{answer}"
    );
    assert!(
        !ranked.contains(&"r-rust-remote-only".to_owned()),
        "{ranked:?}"
    );
    assert!(ranked.iter().position(|r| r == "r-rust") < ranked.iter().position(|r| r == "r-baker"));
    assert!(
        answer["hits"][0]["resume"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("MARKER-RUST-7731")
    );
    // As bare text nothing says where the job is: the remote-only resume is listed.
    let answer = api
        .expect(
            "/resume/search",
            READ,
            json!({"text": "Rust engineer for distributed systems and APIs", "minScore": 0.0}),
            200,
        )
        .await;
    let ranked = ids_of(&answer, "resume");
    assert!(
        ranked[..2].contains(&"r-rust-remote-only".to_owned()),
        "{ranked:?}"
    );
    let baker = ids_of(
        &api.expect(
            "/resume/search",
            READ,
            json!({"text": "We need a pastry chef for croissants", "minScore": 0.0}),
            200,
        )
        .await,
        "resume",
    );
    assert_eq!(
        baker.first().map(String::as_str),
        Some("r-baker"),
        "{baker:?}"
    );
    api.expect("/resume/search", READ, json!({"minScore": 0.0}), 422)
        .await;

    // An update changes what is found.
    api.expect(
        "/resume/update",
        WRITE,
        json!({"id": "r-nurse", "text": "Pastry cook: cakes and croissants."}),
        200,
    )
    .await;
    let pastry = ids_of(
        &api.expect(
            "/resume/search",
            READ,
            json!({"text": "Pastry cook for cakes and croissants", "minScore": 0.0}),
            200,
        )
        .await,
        "resume",
    );
    assert_eq!(
        pastry.first().map(String::as_str),
        Some("r-nurse"),
        "{pastry:?}"
    );
    // Delete erases: gone from searches and from the store's files.
    api.expect("/resume/delete", WRITE, json!({"id": "r-rust"}), 200)
        .await;
    api.expect("/resume/delete", WRITE, json!({"id": "r-rust"}), 404)
        .await;
    let after = ids_of(
        &api.expect(
            "/resume/search",
            READ,
            json!({"text": "Rust Tokio Kubernetes", "minScore": 0.0}),
            200,
        )
        .await,
        "resume",
    );
    assert!(!after.contains(&"r-rust".to_owned()), "{after:?}");
    let mut found = Vec::new();
    for entry in walk(&api.data_dir) {
        if std::fs::read(&entry).is_ok_and(|b| b.windows(16).any(|w| w == b"MARKER-RUST-7731")) {
            found.push(entry);
        }
    }
    assert!(
        found.is_empty(),
        "the deleted resume's text is still in {found:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn fetch_polls_and_previews(api: &Api) {
    let hits_before = api.boards.hits("/v1/boards/acme/jobs");
    let report = api
        .expect("/fetch", WRITE, json!({"source": "acme"}), 200)
        .await;
    assert_eq!(report["source"], "acme", "{report}");
    assert!(
        api.boards.hits("/v1/boards/acme/jobs") > hits_before,
        "the board was not polled"
    );
    let counts = &report["counts"];
    assert!(
        report["notModified"] == true || counts["filtered"].as_u64().unwrap_or_default() > 0,
        "{report}"
    );
    api.expect("/fetch", WRITE, json!({"source": "nobody"}), 404)
        .await;
    let preview = api
        .expect("/fetch", WRITE, json!({"spec": {"board": {"kind": "greenhouse", "token": "acme"}, "baseUrl": api.boards.url}}), 200)
        .await;
    let postings = preview["postings"].as_array().cloned().unwrap_or_default();
    assert!(postings.len() >= 5, "{preview}");
    assert!(postings.iter().all(|p| {
        p["id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("greenhouse:acme:")
    }));
    assert!(postings.iter().all(|p| p["source"] == "preview"));
    // Nothing of the preview was published: no search finds a board job.
    let ids = api
        .search_ids(json!({"text": "engineer", "criteria": {"minScore": 0.0}, "limit": 100}))
        .await;
    assert!(
        ids.iter().all(|id| !id.starts_with("greenhouse:")),
        "{ids:?}"
    );
    let answer = api
        .expect(
            "/fetch",
            WRITE,
            json!({"spec": {"board": {"kind": "feed", "url": "not a url"}}}),
            422,
        )
        .await;
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("spec.board.url:"),
        "{answer}"
    );
    api.expect("/fetch", WRITE, json!({}), 422).await;
}

async fn every_endpoint(api: &Api) {
    access_is_by_token_and_scope(api).await;
    embedding_endpoints_answer(api).await;
    jobs_are_added_searched_and_notified_once(api).await;
    resumes_are_kept_searched_and_erased(api).await;
    fetch_polls_and_previews(api).await;
    limits_answer_413_422_and_503(api).await;
    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metric_sum(&metrics, "jobmatch_api_requests_total") > 50.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_in_one_process() {
    let api = Api::start(false).await;
    every_endpoint(&api).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_with_a_process_per_role() {
    let api = Api::start(true).await;
    every_endpoint(&api).await;
}
