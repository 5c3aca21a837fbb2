//! NATS request–reply, both ends: [`serve`] answers a subject in its role's queue group
//! (one replica answers each request), [`call`] asks and waits. Subjects and bodies are
//! in `jobmatch_core::rpc`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::RequestErrorKind;
use futures::StreamExt;
use jobmatch_core::Role;
use jobmatch_core::rpc::{ErrorKind, Reply, RpcError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Requests one replica handles at once; more wait in the subscription (bounded by
/// NATS's pending limits, past which it drops and the caller times out).
const CONCURRENT_REQUESTS: usize = 64;

/// Answers `subject` until cancelled: each request decoded, handled by `handler` on its
/// own task (at most [`CONCURRENT_REQUESTS`] at once), and its [`Reply`] published to
/// the request's inbox. An undecodable request is answered `Invalid`.
pub async fn serve<Req, Resp, F, Fut>(
    client: async_nats::Client,
    subject: &'static str,
    handler: F,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    let group = jobmatch_core::rpc::server_of(subject)
        .map(Role::name)
        .unwrap_or(subject);
    let mut requests = client.queue_subscribe(subject, group.to_owned()).await?;
    let handler = Arc::new(handler);
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    debug!(subject, group, "answering requests");
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => break,
            message = requests.next() => match message {
                Some(message) => message,
                None => anyhow::bail!("the subscription to {subject} ended"),
            },
        };
        let Some(inbox) = message.reply.clone() else {
            continue; // a publish, not a request: nobody to answer
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let (client, handler) = (client.clone(), handler.clone());
        tokio::spawn(async move {
            let reply: Reply<Resp> = match serde_json::from_slice::<Req>(&message.payload) {
                Ok(request) => handler(request).await.into(),
                Err(e) => Reply::Error(RpcError::new(
                    ErrorKind::Invalid,
                    format!("undecodable request on {subject}: {e}"),
                )),
            };
            let body = match serde_json::to_vec(&reply) {
                Ok(body) => body,
                Err(e) => {
                    warn!(subject, error = %e, "could not encode a reply");
                    return;
                }
            };
            let body = if body.len() > client.server_info().max_payload {
                let too_large: Reply<Resp> = Reply::Error(RpcError::new(
                    ErrorKind::TooLarge,
                    format!(
                        "the answer is {} bytes, over NATS's limit of {}: ask for fewer results",
                        body.len(),
                        client.server_info().max_payload
                    ),
                ));
                serde_json::to_vec(&too_large).unwrap_or_default()
            } else {
                body
            };
            if let Err(e) = client.publish(inbox, body.into()).await {
                warn!(subject, error = %e, "could not send a reply");
            }
            drop(slot);
        });
    }
    Ok(())
}

/// Asks `subject` and waits up to `timeout` for the answer (the request carries its own
/// timeout: the client's default of 10 s would cut longer ones short). No replica serving
/// it or a lost connection are `Unavailable`, no answer in time `TimedOut`; the server's
/// own errors come back as it sent them.
pub async fn call<Req, Resp>(
    client: &async_nats::Client,
    subject: &'static str,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, RpcError>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let role = jobmatch_core::rpc::server_of(subject).map_or("server", Role::name);
    let body = serde_json::to_vec(request)
        .map_err(|e| RpcError::new(ErrorKind::Internal, format!("encoding a request: {e}")))?;
    let request = async_nats::Request::new()
        .payload(body.into())
        .timeout(Some(timeout));
    let answer = client.send_request(subject, request).await.map_err(|e| {
        let (kind, message) = match e.kind() {
            RequestErrorKind::NoResponders => {
                (ErrorKind::Unavailable, format!("no {role} is running"))
            }
            RequestErrorKind::TimedOut => (
                ErrorKind::TimedOut,
                format!("no {role} answered within {}s", timeout.as_secs_f32()),
            ),
            RequestErrorKind::MaxPayloadExceeded => (
                ErrorKind::TooLarge,
                format!("the request is over NATS's payload limit: {e}"),
            ),
            RequestErrorKind::InvalidSubject | RequestErrorKind::Other => {
                (ErrorKind::Unavailable, format!("asking the {role}s: {e}"))
            }
        };
        RpcError::new(kind, message)
    })?;
    serde_json::from_slice::<Reply<Resp>>(&answer.payload)
        .map_err(|e| {
            RpcError::new(
                ErrorKind::Internal,
                format!("undecodable answer from a {role}: {e}"),
            )
        })?
        .into_result()
}
