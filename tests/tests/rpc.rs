//! Request–reply between roles against a real NATS server: a slow server is waited for
//! as long as the caller's timeout says (not the client's 10 s default), a silent one is
//! a timeout (504 at the gateway), no server at all is "not running" (503), and the
//! server's own refusals come back as it sent them.

use std::time::{Duration, Instant};

use jobmatch_core::rpc::{self, ErrorKind, RpcError};
use jobmatch_e2e::process::Nats;
use jobmatch_workers::rpc::{call, serve};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn callers_wait_as_long_as_they_say_and_name_what_went_wrong() {
    let nats = Nats::start().await;
    let client = async_nats::connect(&nats.url).await.expect("connect");

    // Nobody answers the subject yet.
    let err = call::<_, u32>(&client, rpc::FETCH_SUBJECT, &1u32, Duration::from_secs(5))
        .await
        .expect_err("nobody serves it");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("no fetcher is running"), "{err}");

    // A server that takes 11 s for 11 and refuses 0.
    let cancel = CancellationToken::new();
    let server = tokio::spawn(serve(
        client.clone(),
        rpc::FETCH_SUBJECT,
        |seconds: u64| async move {
            if seconds == 0 {
                return Err(RpcError::new(ErrorKind::NotFound, "no JobSource named 0"));
            }
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            Ok(seconds * 2)
        },
        cancel.clone(),
    ));
    // The subscription is in place once a request is answered.
    let mut refused = None;
    for _ in 0..50 {
        match call::<_, u64>(&client, rpc::FETCH_SUBJECT, &0u64, Duration::from_secs(5)).await {
            Err(e) if e.kind == ErrorKind::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    let refused = refused.expect("the server answers");
    assert_eq!(
        refused,
        Err(RpcError::new(ErrorKind::NotFound, "no JobSource named 0"))
    );

    let started = Instant::now();
    let slow = call::<_, u64>(&client, rpc::FETCH_SUBJECT, &11u64, Duration::from_secs(30)).await;
    assert_eq!(slow, Ok(22), "answered after {:?}", started.elapsed());

    let err = call::<_, u64>(&client, rpc::FETCH_SUBJECT, &5u64, Duration::from_secs(1))
        .await
        .expect_err("too slow for its caller");
    assert_eq!(err.kind, ErrorKind::TimedOut, "{err}");
    assert!(
        err.message.contains("no fetcher answered within 1s"),
        "{err}"
    );

    cancel.cancel();
    server
        .await
        .expect("joins")
        .expect("serves until cancelled");
}
