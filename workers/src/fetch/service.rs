//! What the fetchers answer for the api (`jobmatch.rpc.postings`, `jobmatch.rpc.fetch`):
//! jobs posted through the API go through the same dedup and onto JOBS as a board's
//! (source `api`), and a configured JobSource is polled on demand.

use std::sync::Arc;

use jobmatch_core::Posting;
use jobmatch_core::rpc::{
    self, API_SOURCE, ErrorKind, FetchReport, FetchRequest, PostingAccepted, PostingCommand,
    PostingOutcome, RpcError,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::http::BoardClient;
use super::publish::{self, NatsSink, SharedIndex};
use super::role::{InFlight, Sources};
use crate::bus::Bus;
use crate::metrics::Metrics;

/// What the answers need of the fetcher replica.
#[derive(Clone)]
pub struct FetchService {
    pub bus: Bus,
    pub metrics: Arc<Metrics>,
    pub client: BoardClient,
    pub index: SharedIndex,
    pub sources: Sources,
    pub in_flight: InFlight,
}

/// Answers both subjects until cancelled.
pub async fn serve(service: FetchService, cancel: CancellationToken) {
    let client = service.bus.client.clone();
    let postings = {
        let service = service.clone();
        crate::rpc::serve(
            client.clone(),
            rpc::POSTINGS_SUBJECT,
            move |command: PostingCommand| {
                let service = service.clone();
                async move { service.posting(command).await }
            },
            cancel.clone(),
        )
    };
    let fetches = crate::rpc::serve(
        client,
        rpc::FETCH_SUBJECT,
        move |request: FetchRequest| {
            let service = service.clone();
            async move { service.fetch(request).await }
        },
        cancel.clone(),
    );
    if let Err(e) = tokio::try_join!(postings, fetches) {
        warn!(error = %e, "the fetcher stopped answering the API");
    }
}

fn unavailable(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(ErrorKind::Unavailable, format!("NATS: {e}"))
}

impl FetchService {
    async fn posting(&self, command: PostingCommand) -> Result<PostingAccepted, RpcError> {
        let sink = NatsSink(&self.bus);
        match command {
            PostingCommand::Submit { posting, create } => {
                let posting = Posting {
                    id: rpc::api_posting_id(&posting.id),
                    source: API_SOURCE.to_owned(),
                    ..*posting
                };
                let known = self.index.lock().get(&posting.id);
                match (&known, create) {
                    (Some(record), true) if !record.closed => {
                        return Err(RpcError::new(
                            ErrorKind::Conflict,
                            format!(
                                "id: job {:?} exists; change it with /job/update",
                                posting.id
                            ),
                        ));
                    }
                    (None, false) => {
                        return Err(RpcError::new(
                            ErrorKind::NotFound,
                            format!("id: no job {:?}", posting.id),
                        ));
                    }
                    (Some(record), false) if record.closed => {
                        return Err(RpcError::new(
                            ErrorKind::NotFound,
                            format!("id: job {:?} is closed; add it again", posting.id),
                        ));
                    }
                    _ => {}
                }
                let (outcome, duplicate_of) =
                    publish::apply_posting(&sink, &self.index, API_SOURCE, &posting)
                        .await
                        .map_err(unavailable)?;
                info!(posting = %posting.id, ?outcome, "job posted through the API");
                Ok(PostingAccepted {
                    id: posting.id,
                    outcome,
                    duplicate_of,
                })
            }
            PostingCommand::Close { id } => {
                let id = rpc::api_posting_id(&id);
                let open = self.index.lock().get(&id).is_some_and(|r| !r.closed);
                if !open {
                    return Err(RpcError::new(
                        ErrorKind::NotFound,
                        format!("id: no open job {id:?}"),
                    ));
                }
                publish::close_posting(&sink, &self.index, &id)
                    .await
                    .map_err(unavailable)?;
                info!(posting = %id, "job closed through the API");
                Ok(PostingAccepted {
                    id,
                    outcome: PostingOutcome::Closed,
                    duplicate_of: None,
                })
            }
        }
    }

    async fn fetch(&self, request: FetchRequest) -> Result<FetchReport, RpcError> {
        let Some(source) = self.sources.lock().await.get(&request.source).cloned() else {
            return Err(RpcError::new(
                ErrorKind::NotFound,
                format!("source: no JobSource {:?}", request.source),
            ));
        };
        let claimed = self
            .in_flight
            .lock()
            .map(|mut f| f.insert(source.name.clone()))
            .unwrap_or(false);
        if !claimed {
            return Err(RpcError::new(
                ErrorKind::Conflict,
                format!(
                    "source: {:?} is being polled now; retry when it is done",
                    source.name
                ),
            ));
        }
        // The next scheduled poll is an interval from now, as after any poll.
        let next_due = super::schedule::now_ms() + source.spec.interval.as_millis() as i64;
        if let Err(e) = self
            .bus
            .schedule
            .put(source.name.as_str(), next_due.to_string().into())
            .await
        {
            warn!(source = %source.name, error = %e, "could not move the next scheduled poll");
        }
        let result = super::role::poll_and_publish(
            &self.bus,
            &self.client,
            &self.metrics,
            &self.index,
            &source,
        )
        .await;
        if let Ok(mut f) = self.in_flight.lock() {
            f.remove(&source.name);
        }
        result.map_err(|e| {
            RpcError::new(
                ErrorKind::Upstream,
                format!("polling {:?}: {e}", source.name),
            )
        })
    }
}
