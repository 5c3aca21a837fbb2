//! What the embedders answer for the api (`jobmatch.rpc.embed`): texts through the same
//! batching queue as postings and resumes. A full queue answers `Overloaded` at once
//! (the api's 429) rather than queueing without bound.

use jobmatch_core::rpc::{self, EmbedReply, EmbedRequest, ErrorKind, RpcError};
use tokio_util::sync::CancellationToken;

use super::{Batcher, Overlong, SubmitError, Wait};

/// Answers embed requests until cancelled.
pub async fn serve(
    client: async_nats::Client,
    batcher: Batcher,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    crate::rpc::serve(
        client,
        rpc::EMBED_SUBJECT,
        move |request: EmbedRequest| {
            let batcher = batcher.clone();
            async move { embed(&batcher, request).await }
        },
        cancel,
    )
    .await
}

/// Embeds one request's texts.
pub async fn embed(batcher: &Batcher, request: EmbedRequest) -> Result<EmbedReply, RpcError> {
    let overlong = match (request.refuse_overlong, request.chunk_overlong) {
        (true, _) => Overlong::Refuse,
        (false, true) => Overlong::Chunk,
        (false, false) => Overlong::Truncate,
    };
    let first = request.first_index;
    let embedded = batcher
        .embed_with(request.texts, Wait::No, overlong)
        .await
        .map_err(|e| match e {
            SubmitError::TooLong { index, limit } => RpcError::new(
                ErrorKind::Invalid,
                format!(
                    "texts[{}]: longer than the model's limit of {limit} tokens",
                    first + index
                ),
            ),
            other => submit_error(&other),
        })?;
    Ok(EmbedReply {
        vectors: embedded.vectors,
        dimension: batcher.model().dimension(),
        tokens: embedded.tokens,
        truncated: embedded.truncated,
    })
}

/// The queue's refusals as answers.
pub fn submit_error(e: &SubmitError) -> RpcError {
    let kind = match e {
        SubmitError::Busy { .. } => ErrorKind::Overloaded,
        SubmitError::TooMany { .. } => ErrorKind::TooLarge,
        SubmitError::TooLong { .. } => ErrorKind::Invalid,
        SubmitError::Stopped => ErrorKind::Unavailable,
        SubmitError::Tokenizer(_) | SubmitError::Model(_) => ErrorKind::Internal,
    };
    RpcError::new(kind, e.to_string())
}
