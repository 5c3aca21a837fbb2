//! How the API reaches the roles that do the work: the embedders (in process, or over
//! NATS), the matchers and the fetchers (over NATS request–reply, `crate::rpc`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jobmatch_core::rpc::{self, EmbedReply, EmbedRequest, ErrorKind, RpcError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, ApiState};
use crate::embed::{Batcher, Overlong};
use crate::fetch::http::BoardClient;

/// How long each kind of request may wait for its role's answer.
pub const EMBED_TIMEOUT: Duration = Duration::from_secs(30);
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(10);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(55);

/// Where texts are embedded.
#[derive(Clone)]
pub enum Embedding {
    /// This process's own queue (the embedder's listener), set once the model is warm.
    Local(Arc<OnceLock<Batcher>>),
    /// The embedders' queue group over NATS (the `api` role).
    Remote(async_nats::Client),
}

impl Embedding {
    /// Embeds `texts` (already validated), in order.
    pub async fn embed(
        &self,
        texts: Vec<String>,
        overlong: Overlong,
    ) -> Result<EmbedReply, ApiError> {
        let (refuse_overlong, chunk_overlong) =
            (overlong == Overlong::Refuse, overlong == Overlong::Chunk);
        match self {
            Embedding::Local(cell) => {
                let batcher = cell.get().ok_or_else(|| {
                    ApiError::from(RpcError::new(
                        ErrorKind::Unavailable,
                        "the embedding model is still loading; retry shortly",
                    ))
                })?;
                let request = EmbedRequest {
                    texts,
                    first_index: 0,
                    refuse_overlong,
                    chunk_overlong,
                };
                Ok(crate::embed::service::embed(batcher, request).await?)
            }
            Embedding::Remote(client) => {
                // Pieces small enough for one NATS message each, sent at once: the
                // queue group spreads them over the embedders.
                let mut pieces = Vec::new();
                let mut first_index = 0;
                let mut texts = texts.into_iter().peekable();
                while texts.peek().is_some() {
                    let piece: Vec<String> =
                        texts.by_ref().take(rpc::EMBED_TEXTS_PER_REQUEST).collect();
                    let count = piece.len();
                    pieces.push(EmbedRequest {
                        texts: piece,
                        first_index,
                        refuse_overlong,
                        chunk_overlong,
                    });
                    first_index += count;
                }
                let answers = futures::future::try_join_all(pieces.iter().map(|piece| {
                    crate::rpc::call::<_, EmbedReply>(
                        client,
                        rpc::EMBED_SUBJECT,
                        piece,
                        EMBED_TIMEOUT,
                    )
                }))
                .await?;
                let mut all = EmbedReply {
                    vectors: Vec::with_capacity(first_index),
                    dimension: 0,
                    tokens: 0,
                    truncated: 0,
                };
                for answer in answers {
                    all.dimension = answer.dimension;
                    all.tokens += answer.tokens;
                    all.truncated += answer.truncated;
                    all.vectors.extend(answer.vectors);
                }
                Ok(all)
            }
        }
    }

    /// One text's vector: a posting's cut at the model's limit as stored postings are
    /// (`Truncate`), a resume's read whole (`Chunk`).
    pub async fn embed_one(&self, text: String, overlong: Overlong) -> Result<Vec<f32>, ApiError> {
        let mut reply = self.embed(vec![text], overlong).await?;
        reply.vectors.pop().ok_or_else(|| {
            ApiError::from(RpcError::new(
                ErrorKind::Internal,
                "the embedder answered no vector",
            ))
        })
    }
}

/// What the gateway's endpoints share.
#[derive(Clone)]
pub struct Gateway {
    pub api: ApiState,
    pub nats: async_nats::Client,
    /// For previews of unsaved JobSources (`/fetch` with a spec).
    pub boards: BoardClient,
}

impl Gateway {
    /// Asks the role serving `subject`.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &'static str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ApiError> {
        Ok(crate::rpc::call(&self.nats, subject, request, timeout).await?)
    }
}
