//! What the matchers answer for the api, from the store they hold:
//! `jobmatch.rpc.search` (ranked jobs for a resume, ranked resumes for a job) and
//! `jobmatch.rpc.resumes` (the candidate pool: put, erase).
//!
//! Searches are the subscriptions' matching run on demand: the criteria's remote and
//! location rules as a store filter, then [`super::criteria::evaluate`] on each hit, best first, so a
//! search and a notice agree on what matches and why.

use std::sync::Arc;

use jobmatch_core::rpc::{
    self, ErrorKind, JobHit, Page, Resume, ResumeCommand, ResumeHit, ResumeWritten, RpcError,
    SearchRequest,
};
use jobmatch_core::{Posting, RemotePolicy};
use serde_json::{Map, json};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::criteria::{POSTING_FIELD, PostingText, evaluate_text, prefilter};
use super::facts::PostingFacts;
use super::role::{JOBS_COLLECTION, Matcher, RESUMES_COLLECTION};
use crate::store::{Point, Query, StoreError, VectorStore};

/// Payload field of a resume point.
const RESUME_FIELD: &str = "resume";

/// Answers both subjects until cancelled.
pub async fn serve(matcher: Arc<Matcher>, cancel: CancellationToken) -> anyhow::Result<()> {
    let client = matcher.bus().client.clone();
    let searches = {
        let matcher = matcher.clone();
        crate::rpc::serve(
            client.clone(),
            rpc::SEARCH_SUBJECT,
            move |request: SearchRequest| {
                let matcher = matcher.clone();
                async move { matcher.search(request).await }
            },
            cancel.clone(),
        )
    };
    let resumes = crate::rpc::serve(
        client,
        rpc::RESUMES_SUBJECT,
        move |command: ResumeCommand| {
            let matcher = matcher.clone();
            async move { matcher.resume(command).await }
        },
        cancel.clone(),
    );
    tokio::try_join!(searches, resumes)?;
    Ok(())
}

fn store_error(e: StoreError) -> RpcError {
    match e {
        StoreError::Dimension { expected, got, .. } => RpcError::new(
            ErrorKind::Invalid,
            format!("vector: {got} dimensions; the model's vectors have {expected}"),
        ),
        other => RpcError::new(ErrorKind::Unavailable, format!("vector store: {other}")),
    }
}

/// Runs `query` with a growing limit until `wanted` hits pass `keep` or the store has no
/// more: term rules are not store filters, so some hits may be dropped.
async fn search_until<T>(
    store: &impl VectorStore,
    collection: &str,
    mut query: Query,
    wanted: usize,
    keep: impl Fn(&crate::store::Hit) -> Option<T>,
) -> Result<Vec<T>, RpcError> {
    query.limit = wanted;
    loop {
        let hits = match store.search(collection, &query).await {
            Ok(hits) => hits,
            // Nothing stored yet in this collection.
            Err(StoreError::NoCollection(_)) => return Ok(Vec::new()),
            Err(e) => return Err(store_error(e)),
        };
        let exhausted = hits.len() < query.limit;
        let kept: Vec<T> = hits.iter().filter_map(&keep).take(wanted).collect();
        if kept.len() >= wanted || exhausted {
            return Ok(kept);
        }
        query.limit = query.limit.saturating_mul(4);
    }
}

/// The page `offset..offset + limit` of `found` (which holds up to one more), and the
/// next page's offset when there is more.
fn page<T>(mut found: Vec<T>, offset: usize, limit: usize) -> Page<T> {
    let more = found.len() > offset + limit;
    found.truncate(offset + limit);
    let hits = found.split_off(offset.min(found.len()));
    Page {
        hits,
        next_offset: more.then_some(offset + limit),
    }
}

impl Matcher {
    pub(crate) async fn search(&self, request: SearchRequest) -> Result<SearchAnswer, RpcError> {
        match request {
            SearchRequest::Jobs {
                vector,
                criteria,
                limit,
                offset,
            } => {
                let query = Query {
                    vector,
                    filter: prefilter(&criteria),
                    limit: 0,
                    min_score: Some(criteria.min_score),
                    own_threshold: None,
                };
                let found = search_until(
                    self.store(),
                    JOBS_COLLECTION,
                    query,
                    offset + limit + 1,
                    |hit| {
                        let posting: Posting =
                            serde_json::from_value(hit.payload.get(POSTING_FIELD)?.clone()).ok()?;
                        let text = PostingText::stored(&posting, &hit.payload);
                        let explanation = evaluate_text(&criteria, &text, hit.score).ok()?;
                        Some(JobHit {
                            score: hit.score,
                            posting,
                            explanation,
                        })
                    },
                )
                .await?;
                Ok(SearchAnswer::Jobs(page(found, offset, limit)))
            }
            SearchRequest::Resumes {
                vector,
                posting,
                place_known,
                min_score,
                limit,
                offset,
            } => {
                let query = Query {
                    vector,
                    filter: Default::default(),
                    limit: 0,
                    min_score: Some(min_score),
                    own_threshold: None,
                };
                // Read once for every resume it is checked against.
                let facts = PostingFacts::of(&posting);
                let found = search_until(
                    self.store(),
                    RESUMES_COLLECTION,
                    query,
                    offset + limit + 1,
                    |hit| {
                        let resume: Resume =
                            serde_json::from_value(hit.payload.get(RESUME_FIELD)?.clone()).ok()?;
                        let mut criteria = resume.criteria.clone().unwrap_or_default();
                        criteria.min_score = min_score;
                        if !place_known {
                            // Bare text says nothing of where the job is.
                            criteria.remote = RemotePolicy::Allowed;
                            criteria.locations.clear();
                        }
                        let text = PostingText::with_facts(&posting, facts.clone());
                        let mut explanation = evaluate_text(&criteria, &text, hit.score).ok()?;
                        if !place_known {
                            explanation.filters.push(
                                "remote and locations: not checked (the posting was given as text)"
                                    .to_owned(),
                            );
                        }
                        Some(ResumeHit {
                            score: hit.score,
                            resume,
                            explanation,
                        })
                    },
                )
                .await?;
                Ok(SearchAnswer::Resumes(page(found, offset, limit)))
            }
        }
    }

    pub(crate) async fn resume(&self, command: ResumeCommand) -> Result<ResumeWritten, RpcError> {
        match command {
            ResumeCommand::Put {
                resume,
                vector,
                create,
            } => {
                self.ensure_collections(vector.len())
                    .await
                    .map_err(store_error)?;
                let exists = self
                    .store()
                    .contains(RESUMES_COLLECTION, &resume.id)
                    .await
                    .map_err(store_error)?;
                if create && exists {
                    return Err(RpcError::new(
                        ErrorKind::Conflict,
                        format!(
                            "id: resume {:?} exists; change it with /resume/update",
                            resume.id
                        ),
                    ));
                }
                if !create && !exists {
                    return Err(RpcError::new(
                        ErrorKind::NotFound,
                        format!("id: no resume {:?}", resume.id),
                    ));
                }
                let id = resume.id.clone();
                let mut payload = Map::new();
                payload.insert(RESUME_FIELD.into(), json!(resume));
                self.store()
                    .upsert(
                        RESUMES_COLLECTION,
                        vec![Point {
                            id: id.clone(),
                            vector,
                            payload,
                        }],
                    )
                    .await
                    .map_err(store_error)?;
                info!(resume = %id, created = create, "resume stored");
                Ok(ResumeWritten { id })
            }
            ResumeCommand::Delete { id } => {
                let exists = match self.store().contains(RESUMES_COLLECTION, &id).await {
                    Ok(exists) => exists,
                    Err(StoreError::NoCollection(_)) => false,
                    Err(e) => return Err(store_error(e)),
                };
                if !exists {
                    return Err(RpcError::new(
                        ErrorKind::NotFound,
                        format!("id: no resume {id:?}"),
                    ));
                }
                self.store()
                    .erase(RESUMES_COLLECTION, std::slice::from_ref(&id))
                    .await
                    .map_err(store_error)?;
                info!(resume = %id, "resume erased");
                Ok(ResumeWritten { id })
            }
        }
    }
}

/// A search's answer: jobs or resumes, as asked.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum SearchAnswer {
    Jobs(Page<JobHit>),
    Resumes(Page<ResumeHit>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_and_point_to_the_next() {
        let found: Vec<u32> = (0..6).collect();
        let p = page(found.clone(), 2, 3);
        assert_eq!((p.hits, p.next_offset), (vec![2, 3, 4], Some(5)));
        let p = page(found[..5].to_vec(), 2, 3);
        assert_eq!((p.hits, p.next_offset), (vec![2, 3, 4], None));
        let p = page(found, 10, 3);
        assert_eq!((p.hits, p.next_offset), (vec![], None));
    }
}
