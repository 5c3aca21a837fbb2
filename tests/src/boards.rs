//! A loopback job board: every connector's public API serving fixture files written in
//! that board's real shape, plus boards that misbehave (malformed JSON, HTTP 500, no
//! answer, throttling, huge and invalid bodies) and one that honours conditional GET.
//! Logs every request (time, path, `If-None-Match`, `User-Agent`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::fixture;

/// The body of a route and its content type.
#[derive(Clone)]
struct Route {
    content_type: &'static str,
    body: Arc<Vec<u8>>,
}

/// One request as the board saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub path: String,
    pub query: String,
    pub if_none_match: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Default)]
struct Shared {
    routes: Arc<RwLock<HashMap<String, Route>>>,
    lever: Arc<HashMap<String, serde_json::Value>>,
    log: Arc<Mutex<Vec<Request>>>,
}

pub struct BoardServer {
    pub url: String,
    shared: Shared,
    _task: tokio::task::JoinHandle<()>,
}

/// Fixture routes: request path (with the query where it selects the page) → file.
const FIXTURES: &[(&str, &str)] = &[
    ("/v1/boards/acme/jobs", "greenhouse-acme.json"),
    ("/posting-api/job-board/nimbus", "ashby-nimbus.json"),
    (
        "/v1/companies/bosch/postings",
        "smartrecruiters-bosch-list.json",
    ),
    (
        "/v1/companies/bosch/postings/744000012345678",
        "smartrecruiters-bosch-744000012345678.json",
    ),
    (
        "/v1/companies/bosch/postings/744000087654321",
        "smartrecruiters-bosch-744000087654321.json",
    ),
    (
        "/v1/companies/bosch/postings/744000011112222",
        "smartrecruiters-bosch-744000011112222.json",
    ),
    ("/api/v1/widget/accounts/orbit", "workable-orbit.json"),
    ("/api", "remoteok.json"),
    ("/api/remote-jobs", "remotive.json"),
    ("/api/job-board-api?page=1", "arbeitnow-page1.json"),
    ("/api/job-board-api?page=2", "arbeitnow-page2.json"),
    ("/api/v1/search_by_date", "hn-search.json"),
    ("/api/v1/items/45000001", "hn-item-45000001.json"),
    ("/feeds/remote.rss", "feed-remote.rss"),
    ("/feeds/helix.atom", "feed-atom.xml"),
    ("/careers/kestrel", "careerpage-kestrel.html"),
];

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("rss") => "application/rss+xml; charset=utf-8",
        Some("xml") | Some("atom") => "application/atom+xml; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/json; charset=utf-8",
    }
}

impl BoardServer {
    /// Serves every fixture board (Greenhouse `acme`, Lever `globex`, Ashby `nimbus`,
    /// SmartRecruiters `bosch`, Workable `orbit`, RemoteOK, Remotive, Arbeitnow, HN,
    /// two feeds and the `kestrel` career page), and the misbehaving Greenhouse boards
    /// `broken-json` (truncated JSON), `error500`, `slow` (answers after 30 s),
    /// `partial` (acme plus one malformed job), `etag` (acme with an ETag, 304 on a
    /// match), `throttled` (429 with `Retry-After: 2` to its first request), `huge`
    /// (50 MB, streamed), `invalid-utf8`, `wrong-types`, and the career page `deep`
    /// (HTML nested 100,000 levels).
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Like [`BoardServer::start`], listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        Self::serve(host, Vec::new()).await
    }

    /// Like [`BoardServer::start`], plus more Greenhouse boards: (token, response body).
    pub async fn start_with(extra_greenhouse: Vec<(String, String)>) -> Self {
        Self::serve("127.0.0.1", extra_greenhouse).await
    }

    async fn serve(host: &str, extra_greenhouse: Vec<(String, String)>) -> Self {
        let mut routes = HashMap::new();
        for (path, file) in FIXTURES {
            let body = std::fs::read(fixture(&format!("boards/{file}"))).expect("board fixture");
            routes.insert(
                (*path).to_owned(),
                Route {
                    content_type: content_type(file),
                    body: Arc::new(body),
                },
            );
        }
        for (token, body) in extra_greenhouse {
            routes.insert(
                format!("/v1/boards/{token}/jobs"),
                Route {
                    content_type: content_type("x.json"),
                    body: Arc::new(body.into_bytes()),
                },
            );
        }
        let lever_body =
            std::fs::read_to_string(fixture("boards/lever-globex.json")).expect("lever fixture");
        let mut lever = HashMap::new();
        lever.insert(
            "globex".to_owned(),
            serde_json::from_str(&lever_body).expect("lever fixture is JSON"),
        );
        let shared = Shared {
            routes: Arc::new(RwLock::new(routes)),
            lever: Arc::new(lever),
            log: Arc::default(),
        };
        let app = Router::new()
            .fallback(serve)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), log))
            .with_state(shared.clone());
        let (url, task) = crate::serve_on(host, app).await;
        Self {
            url,
            shared,
            _task: task,
        }
    }

    /// Replaces what a Greenhouse board serves.
    pub fn set_greenhouse(&self, token: &str, body: String) {
        if let Ok(mut routes) = self.shared.routes.write() {
            routes.insert(
                format!("/v1/boards/{token}/jobs"),
                Route {
                    content_type: content_type("x.json"),
                    body: Arc::new(body.into_bytes()),
                },
            );
        }
    }

    /// Requests received for a path (without query).
    pub fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// The requests received for a path (without query), oldest first.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .map(|log| log.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default()
    }

    /// Every request received, oldest first.
    pub fn all_requests(&self) -> Vec<Request> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

async fn log(
    State(s): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let Ok(mut log) = s.log.lock() {
        log.push(Request {
            at: Instant::now(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            if_none_match: header(header::IF_NONE_MATCH),
            user_agent: header(header::USER_AGENT),
        });
    }
    next.run(req).await
}

fn respond(route: &Route) -> Response {
    (
        [(header::CONTENT_TYPE, route.content_type)],
        route.body.as_ref().clone(),
    )
        .into_response()
}

fn json(body: impl Into<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        r#"{"status":404,"error":"Job board not found"}"#,
    )
        .into_response()
}

async fn serve(
    State(s): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = uri.path();
    let route = |key: &str| s.routes.read().ok().and_then(|r| r.get(key).cloned());
    let acme = || route("/v1/boards/acme/jobs");
    match path {
        "/v1/boards/broken-json/jobs" => return json(r#"{"jobs": [{"id": 1, "title": "Truncated"#),
        "/v1/boards/error500/jobs" => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
        }
        "/v1/boards/partial/jobs" => {
            let Some(acme) = acme() else {
                return not_found();
            };
            let mut board: serde_json::Value =
                serde_json::from_slice(&acme.body).expect("fixture is JSON");
            if let Some(jobs) = board["jobs"].as_array_mut() {
                jobs.push(
                    serde_json::json!({"id": "not-a-number", "title": 7, "absolute_url": null}),
                );
            }
            return json(board.to_string());
        }
        "/v1/boards/slow/jobs" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return json(r#"{"jobs": []}"#);
        }
        "/v1/boards/etag/jobs" => {
            let Some(acme) = acme() else {
                return not_found();
            };
            let etag = format!("\"acme-{}\"", acme.body.len());
            if headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                == Some(etag.as_str())
            {
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            let mut response = respond(&acme);
            if let Ok(value) = etag.parse() {
                response.headers_mut().insert(header::ETAG, value);
            }
            return response;
        }
        "/v1/boards/throttled/jobs" => {
            let first = s
                .log
                .lock()
                .map(|l| l.iter().filter(|r| r.path == path).count() <= 1)
                .unwrap_or(true);
            if first {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "2")],
                    r#"{"error":"rate limited"}"#,
                )
                    .into_response();
            }
            return acme().map(|r| respond(&r)).unwrap_or_else(not_found);
        }
        "/v1/boards/huge/jobs" => {
            // 50 MB in 1 MB chunks, with no Content-Length: the client must stop reading.
            let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
            let chunks = std::iter::once(bytes::Bytes::from_static(b"{\"jobs\": ["))
                .chain(std::iter::repeat_n(chunk, 50))
                .map(Ok::<_, std::io::Error>);
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        "/v1/boards/invalid-utf8/jobs" => {
            let mut body = br#"{"jobs": [{"id": 1, "title": "Caf"#.to_vec();
            body.extend_from_slice(&[0xff, 0xfe]);
            body.extend_from_slice(br#"", "absolute_url": "https://x/1"}]}"#);
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        "/v1/boards/wrong-types/jobs" => return json(r#"{"jobs": "all of them"}"#),
        "/careers/deep" => {
            let depth = 100_000;
            let html = format!(
                "<html><body>{}<script type=\"application/ld+json\">{{\"@type\": \"JobPosting\", \"title\": \"Deep Engineer\"}}</script>{}</body></html>",
                "<div>".repeat(depth),
                "</div>".repeat(depth)
            );
            return ([(header::CONTENT_TYPE, "text/html")], html).into_response();
        }
        _ => {}
    }
    if let Some(site) = path.strip_prefix("/v0/postings/") {
        return lever_postings(&s, site, &q);
    }
    let with_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    match route(&with_query).or_else(|| route(path)) {
        Some(r) => respond(&r),
        None => not_found(),
    }
}

fn lever_postings(s: &Shared, site: &str, q: &HashMap<String, String>) -> Response {
    let Some(serde_json::Value::Array(all)) = s.lever.get(site) else {
        return (
            StatusCode::NOT_FOUND,
            r#"{"ok":false,"error":"Document not found"}"#,
        )
            .into_response();
    };
    let skip = q.get("skip").and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<_> = all.iter().skip(skip).take(limit).cloned().collect();
    json(serde_json::Value::Array(page).to_string())
}
