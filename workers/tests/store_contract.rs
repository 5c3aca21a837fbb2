//! One contract, every backend: the embedded store (in memory and persisted) always, and
//! a Qdrant server when `JOBMATCH_QDRANT_URL` is set (e.g. `http://127.0.0.1:6334`).

use jobmatch_workers::store::embedded::EmbeddedStore;
use jobmatch_workers::store::qdrant::QdrantStore;
use jobmatch_workers::store::{Condition, Filter, Point, Query, StoreError, VectorStore};
use serde_json::json;

fn point(id: &str, vector: [f32; 3], city: &str, remote: bool) -> Point {
    let payload = json!({"city": city, "workplace": if remote { "remote" } else { "onsite" }, "tags": ["rust", city]});
    Point {
        id: id.to_owned(),
        vector: vector.to_vec(),
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

fn query(vector: [f32; 3], filter: Filter, limit: usize, min_score: Option<f32>) -> Query {
    Query {
        vector: vector.to_vec(),
        filter,
        limit,
        min_score,
        own_threshold: None,
    }
}

fn ids(hits: &[jobmatch_workers::store::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

/// The behaviour every backend must have. `c` is a collection name unique to the run.
async fn contract(store: &impl VectorStore, c: &str) {
    store
        .ensure_collection(c, 3, &["city", "workplace", "tags"])
        .await
        .expect("create");
    store
        .ensure_collection(c, 3, &["city", "workplace", "tags"])
        .await
        .expect("create is idempotent");
    store
        .upsert(
            c,
            vec![
                point("greenhouse:a:1", [1.0, 0.0, 0.0], "berlin", false),
                point("greenhouse:a:2", [0.8, 0.6, 0.0], "paris", true),
                point("lever:b:3", [0.0, 1.0, 0.0], "berlin", true),
                point("lever:b:4", [0.0, 0.0, 1.0], "munich", false),
            ],
        )
        .await
        .expect("upsert");
    assert_eq!(store.count(c).await.expect("count"), 4);

    // Nearest first, with cosine scores; ids and payloads come back as stored.
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], Filter::default(), 3, None))
        .await
        .expect("search");
    assert_eq!(
        ids(&hits),
        ["greenhouse:a:1", "greenhouse:a:2", "lever:b:3"]
    );
    assert!(
        (hits[0].score - 1.0).abs() < 1e-4 && (hits[1].score - 0.8).abs() < 1e-4,
        "{hits:?}"
    );
    assert_eq!(hits[0].payload["city"], "berlin");

    // Score threshold.
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], Filter::default(), 10, Some(0.5)))
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["greenhouse:a:1", "greenhouse:a:2"]);

    // Each point's own threshold: b:3 (score 0.0) and a:2 (0.8) ask for more than they
    // score, a:1 (1.0) for less; b:4 has none.
    store
        .upsert(
            c,
            vec![
                Point {
                    payload: json!({"city": "berlin", "least": 0.5})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    ..point("greenhouse:a:1", [1.0, 0.0, 0.0], "berlin", false)
                },
                Point {
                    payload: json!({"city": "paris", "least": 0.81})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    ..point("greenhouse:a:2", [0.8, 0.6, 0.0], "paris", true)
                },
                Point {
                    payload: json!({"city": "berlin", "least": 0.1})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    ..point("lever:b:3", [0.0, 1.0, 0.0], "berlin", true)
                },
            ],
        )
        .await
        .expect("upsert");
    let own = Query {
        own_threshold: Some("least"),
        ..query([1.0, 0.0, 0.0], Filter::default(), 10, None)
    };
    let hits = store.search(c, &own).await.expect("search");
    assert_eq!(ids(&hits), ["greenhouse:a:1", "lever:b:4"]);
    store
        .upsert(
            c,
            vec![
                point("greenhouse:a:1", [1.0, 0.0, 0.0], "berlin", false),
                point("greenhouse:a:2", [0.8, 0.6, 0.0], "paris", true),
                point("lever:b:3", [0.0, 1.0, 0.0], "berlin", true),
            ],
        )
        .await
        .expect("upsert");

    // must, should, must_not, any-of, and array fields.
    let berlin = Filter {
        must: vec![Condition::keyword("city", "berlin")],
        ..Default::default()
    };
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], berlin, 10, None))
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["greenhouse:a:1", "lever:b:3"]);
    let remote_or_munich = Filter {
        should: vec![
            Condition::keyword("workplace", "remote"),
            Condition::keyword("tags", "munich"),
        ],
        ..Default::default()
    };
    let hits = store
        .search(c, &query([0.0, 0.0, 1.0], remote_or_munich, 10, None))
        .await
        .expect("search");
    assert_eq!(ids(&hits)[0], "lever:b:4");
    assert_eq!(hits.len(), 3);
    let not_remote_in_cities = Filter {
        must: vec![Condition::AnyKeyword {
            key: "city".into(),
            values: vec!["paris".into(), "munich".into(), "berlin".into()],
        }],
        must_not: vec![Condition::keyword("workplace", "remote")],
        ..Default::default()
    };
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], not_remote_in_cities, 10, None))
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["greenhouse:a:1", "lever:b:4"]);
    let nested = Filter {
        must: vec![Condition::Nested(Filter {
            should: vec![Condition::keyword("city", "paris")],
            ..Default::default()
        })],
        ..Default::default()
    };
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], nested, 10, None))
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["greenhouse:a:2"]);

    // A nested filter under must_not (how the matcher asks which subscriptions take a
    // job): not "in berlin and not remote".
    let not_onsite_in_berlin = Filter {
        must_not: vec![Condition::Nested(Filter {
            must: vec![Condition::keyword("city", "berlin")],
            must_not: vec![Condition::AnyKeyword {
                key: "workplace".into(),
                values: vec!["remote".into(), "hybrid".into()],
            }],
            ..Default::default()
        })],
        ..Default::default()
    };
    let hits = store
        .search(c, &query([1.0, 0.0, 0.0], not_onsite_in_berlin, 10, None))
        .await
        .expect("search");
    // b:3 and b:4 tie at 0: compared as a set.
    let mut found = ids(&hits);
    found.sort_unstable();
    assert_eq!(found, ["greenhouse:a:2", "lever:b:3", "lever:b:4"]);

    // Upsert replaces by id; delete removes; unknown ids are ignored.
    store
        .upsert(
            c,
            vec![point("greenhouse:a:1", [0.0, 0.0, 1.0], "hamburg", false)],
        )
        .await
        .expect("replace");
    assert_eq!(store.count(c).await.expect("count"), 4);
    let hits = store
        .search(c, &query([0.0, 0.0, 1.0], Filter::default(), 1, None))
        .await
        .expect("search");
    assert_eq!(hits[0].payload["city"], "hamburg");
    store
        .delete(c, &["greenhouse:a:1".into(), "never:was:here".into()])
        .await
        .expect("delete");
    assert_eq!(store.count(c).await.expect("count"), 3);
}

#[tokio::test]
async fn embedded_in_memory() {
    let store = EmbeddedStore::in_memory();
    contract(&store, "contract").await;
    assert!(matches!(
        store
            .search("nope", &query([1.0, 0.0, 0.0], Filter::default(), 1, None))
            .await,
        Err(StoreError::NoCollection(_))
    ));
    assert!(matches!(
        store.ensure_collection("contract", 4, &[]).await,
        Err(StoreError::Dimension { .. })
    ));
    assert!(matches!(
        store
            .upsert(
                "contract",
                vec![Point {
                    id: "x".into(),
                    vector: vec![1.0],
                    payload: Default::default()
                }]
            )
            .await,
        Err(StoreError::Dimension { .. })
    ));
}

#[tokio::test]
async fn embedded_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        contract(&store, "contract").await;
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.count("contract").await.expect("count"), 3);
    let hits = store
        .search(
            "contract",
            &query([0.0, 1.0, 0.0], Filter::default(), 1, None),
        )
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["lever:b:3"]);
    // A torn last record (a crash mid-append) loses only that record, and appends go
    // on after the intact ones.
    let log = dir.path().join("vectors.bin");
    let mut bytes = std::fs::read(&log).expect("log");
    bytes.extend_from_slice(&[100, 0, 0, 0, 1, 2, 3, 4, 2, 8]);
    std::fs::write(&log, bytes).expect("write");
    drop(store);
    let store = EmbeddedStore::open(dir.path()).expect("reopen after torn write");
    assert_eq!(store.count("contract").await.expect("count"), 3);
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("vectors.bin.damaged-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the cut bytes are kept beside the log");
    assert_eq!(
        std::fs::read(kept[0].path()).expect("kept"),
        [100, 0, 0, 0, 1, 2, 3, 4, 2, 8]
    );
    store
        .upsert(
            "contract",
            vec![point("lever:b:5", [0.0, 0.6, 0.8], "berlin", false)],
        )
        .await
        .expect("upsert after the cut");
    drop(store);
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.count("contract").await.expect("count"), 4);
}

/// A data dir of the JSON-lines format before the binary log is read once and
/// converted; nothing in it is lost.
#[tokio::test]
async fn embedded_converts_a_json_lines_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = [
        json!({"op": "collection", "name": "jobs", "dimension": 3}),
        json!({"op": "upsert", "collection": "jobs", "point": {"id": "a", "vector": [1.0, 0.0, 0.0], "payload": {"city": "berlin"}}}),
        json!({"op": "upsert", "collection": "jobs", "point": {"id": "b", "vector": [0.0, 1.0, 0.0], "payload": {}}}),
        json!({"op": "delete", "collection": "jobs", "id": "b"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.path().join("vectors.jsonl"), text).expect("write");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    assert!(!dir.path().join("vectors.jsonl").exists());
    assert!(dir.path().join("vectors.bin").exists());
    drop(store);
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.count("jobs").await.expect("count"), 1);
    let hits = store
        .search("jobs", &query([1.0, 0.0, 0.0], Filter::default(), 5, None))
        .await
        .expect("search");
    assert_eq!(ids(&hits), ["a"]);
    assert_eq!(hits[0].payload["city"], "berlin");
}

#[tokio::test]
async fn qdrant_server_when_configured() {
    let Ok(url) = std::env::var("JOBMATCH_QDRANT_URL") else {
        eprintln!("JOBMATCH_QDRANT_URL not set: Qdrant contract not run");
        return;
    };
    let store = QdrantStore::connect(
        &url,
        std::env::var("JOBMATCH_QDRANT_API_KEY").ok().as_deref(),
    )
    .expect("connect");
    let collection = format!("contract_{}", std::process::id());
    contract(&store, &collection).await;
}
