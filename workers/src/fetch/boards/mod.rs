//! One connector per board. Each has pure `parse` functions (what the fuzz targets and
//! the benchmark drive) and a `poll` that makes the requests the board needs: one, a
//! page at a time, or a listing plus details. `poll` returns `None` when the board
//! answered 304 Not Modified.

pub mod arbeitnow;
pub mod ashby;
pub mod careerpage;
pub mod feed;
pub mod greenhouse;
pub mod hackernews;
pub mod lever;
pub mod remoteok;
pub mod remotive;
pub mod smartrecruiters;
pub mod workable;

/// `Accept` for JSON APIs.
pub const JSON: &str = "application/json";
