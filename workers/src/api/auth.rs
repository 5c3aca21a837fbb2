//! Bearer tokens from a file (`JOBMATCH_API_TOKENS`; in the cluster a mounted Secret):
//! one token per line, optionally followed by a space and its scope, `read` or `write`
//! (`write` when absent); blank lines and `#` comments are skipped. The file is read
//! again when it changes (a rotated Secret), keeping the old tokens if the new file is
//! unreadable.
//!
//! Every write needs a `write` token; reads need a token unless `--api-public-reads`.
//! Without a token file the API is open only on a loopback listener (a laptop); on any
//! other address every request is refused, so a pod never serves an open API by
//! accident. Tokens are compared in constant time and never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ApiError;

/// How often the token file is checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("API tokens {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API tokens {path}, line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("API tokens {0}: no tokens in the file")]
    Empty(PathBuf),
}

/// The tokens of one reading of the file.
#[derive(Default)]
struct Tokens(Vec<(Vec<u8>, Scope)>);

impl Tokens {
    fn parse(path: &Path, text: &str) -> Result<Self, TokensError> {
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let token = words.next().unwrap_or_default();
            let scope = match words.next() {
                None | Some("write") => Scope::Write,
                Some("read") => Scope::Read,
                Some(other) => {
                    return Err(TokensError::Line {
                        path: path.to_owned(),
                        line: n + 1,
                        message: format!("scope {other:?}: `read` or `write`"),
                    });
                }
            };
            if words.next().is_some() {
                return Err(TokensError::Line {
                    path: path.to_owned(),
                    line: n + 1,
                    message: "a token, then at most its scope".into(),
                });
            }
            tokens.push((token.as_bytes().to_vec(), scope));
        }
        if tokens.is_empty() {
            return Err(TokensError::Empty(path.to_owned()));
        }
        Ok(Self(tokens))
    }

    /// The scope of `presented`, comparing it with every token in constant time.
    fn scope_of(&self, presented: &[u8]) -> Option<Scope> {
        let mut found = None;
        for (token, scope) in &self.0 {
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = Some(match (found, scope) {
                    (Some(Scope::Write), _) | (_, Scope::Write) => Scope::Write,
                    _ => Scope::Read,
                });
            }
        }
        found
    }
}

enum Mode {
    /// No token file, on a loopback listener: everything allowed.
    Open,
    /// No token file on a reachable address: everything refused.
    Closed,
    Tokens {
        path: PathBuf,
        tokens: RwLock<Arc<Tokens>>,
        modified: RwLock<Option<SystemTime>>,
    },
}

/// Who may do what; cheap to clone.
#[derive(Clone)]
pub struct Access {
    mode: Arc<Mode>,
    public_reads: bool,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_tokens(path: &Path) -> Result<Tokens, TokensError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
        path: path.to_owned(),
        source,
    })?;
    Tokens::parse(path, &text)
}

impl Access {
    /// From the token file, if any; `loopback` says whether the listener is on a
    /// loopback address.
    pub fn load(
        path: Option<&Path>,
        public_reads: bool,
        loopback: bool,
    ) -> Result<Self, TokensError> {
        let mode = match path {
            Some(path) => {
                let tokens = match read_tokens(path) {
                    Ok(tokens) => {
                        info!(path = %path.display(), tokens = tokens.0.len(), "API tokens loaded");
                        tokens
                    }
                    // A Secret not created yet (its volume is optional), or created empty:
                    // refuse every request until the file has tokens.
                    Err(TokensError::Read { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        warn!(path = %path.display(), "no API token file yet: every API request is refused until it appears");
                        Tokens::default()
                    }
                    Err(TokensError::Empty(_)) => {
                        warn!(path = %path.display(), "the API token file holds no tokens: every API request is refused");
                        Tokens::default()
                    }
                    Err(e) => return Err(e),
                };
                Mode::Tokens {
                    path: path.to_owned(),
                    modified: RwLock::new(modified(path)),
                    tokens: RwLock::new(Arc::new(tokens)),
                }
            }
            None if loopback => {
                warn!(
                    "no API tokens (JOBMATCH_API_TOKENS): the API is open to this machine's own clients only"
                );
                Mode::Open
            }
            None => {
                warn!(
                    "no API tokens (JOBMATCH_API_TOKENS) on a listener other machines reach: every API request is refused"
                );
                Mode::Closed
            }
        };
        Ok(Self {
            mode: Arc::new(mode),
            public_reads,
        })
    }

    /// Everything allowed (tests of the routes themselves).
    pub fn open() -> Self {
        Self {
            mode: Arc::new(Mode::Open),
            public_reads: false,
        }
    }

    /// Re-reads the token file whenever it changes, until cancelled.
    pub async fn reload(self, cancel: CancellationToken) {
        let Mode::Tokens {
            path,
            tokens,
            modified: seen,
        } = &*self.mode
        else {
            cancel.cancelled().await;
            return;
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(RELOAD_EVERY) => {}
            }
            let now = modified(path);
            if now == *seen.read().unwrap_or_else(|p| p.into_inner()) {
                continue;
            }
            match read_tokens(path) {
                Ok(fresh) => {
                    info!(path = %path.display(), tokens = fresh.0.len(), "API tokens reloaded");
                    *tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
                    *seen.write().unwrap_or_else(|p| p.into_inner()) = now;
                }
                Err(e) => warn!(error = %e, "API tokens unreadable; keeping the previous ones"),
            }
        }
    }

    /// Decides a request needing `needed`.
    fn check(&self, authorization: Option<&[u8]>, needed: Scope) -> Result<(), ApiError> {
        let tokens = match &*self.mode {
            Mode::Open => return Ok(()),
            Mode::Closed => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "this server has no API tokens configured (JOBMATCH_API_TOKENS)",
                ));
            }
            Mode::Tokens { tokens, .. } => tokens.read().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        if needed == Scope::Read && self.public_reads {
            return Ok(());
        }
        let presented = authorization.and_then(|value| {
            let (scheme, token) = std::str::from_utf8(value).ok()?.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().as_bytes().to_vec())
        });
        let Some(presented) = presented else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "authorization: a bearer token is required (Authorization: Bearer <token>)",
            ));
        };
        match (tokens.scope_of(&presented), needed) {
            (None, _) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "authorization: the token is not valid",
            )),
            (Some(Scope::Read), Scope::Write) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "authorization: this token may only read; writes need a token of scope `write`",
            )),
            (Some(_), _) => Ok(()),
        }
    }
}

async fn require(access: &Access, needed: Scope, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match access.check(authorization, needed) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware: a read (or write) token, or public reads.
pub async fn require_read(State(access): State<Access>, request: Request, next: Next) -> Response {
    require(&access, Scope::Read, request, next).await
}

/// Middleware: a write token.
pub async fn require_write(State(access): State<Access>, request: Request, next: Next) -> Response {
    require(&access, Scope::Write, request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(text: &str, public_reads: bool) -> Access {
        let tokens = Tokens::parse(Path::new("tokens"), text).expect("valid");
        Access {
            mode: Arc::new(Mode::Tokens {
                path: "tokens".into(),
                tokens: RwLock::new(Arc::new(tokens)),
                modified: RwLock::new(None),
            }),
            public_reads,
        }
    }

    fn status(result: Result<(), ApiError>) -> u16 {
        result.map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn scopes_decide_reads_and_writes() {
        let a = access("# ops\nw-token\nr-token read\n\nw2 write\n", false);
        let bearer = |t: &str| format!("Bearer {t}").into_bytes();
        assert_eq!(status(a.check(Some(&bearer("w-token")), Scope::Write)), 200);
        assert_eq!(status(a.check(Some(&bearer("w2")), Scope::Write)), 200);
        assert_eq!(status(a.check(Some(&bearer("r-token")), Scope::Read)), 200);
        assert_eq!(status(a.check(Some(&bearer("r-token")), Scope::Write)), 403);
        assert_eq!(status(a.check(Some(&bearer("nope")), Scope::Read)), 401);
        assert_eq!(status(a.check(Some(&bearer("w-toke")), Scope::Read)), 401);
        assert_eq!(status(a.check(None, Scope::Read)), 401);
        assert_eq!(status(a.check(Some(b"Basic w-token"), Scope::Read)), 401);
        assert_eq!(status(a.check(Some(b"bearer w-token"), Scope::Write)), 200);
    }

    #[test]
    fn public_reads_still_guard_writes() {
        let a = access("w-token\n", true);
        assert_eq!(status(a.check(None, Scope::Read)), 200);
        assert_eq!(status(a.check(None, Scope::Write)), 401);
    }

    #[test]
    fn bad_files_name_the_line() {
        let err = Tokens::parse(Path::new("t"), "ok\nbad admin\n")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(err.to_string().contains("admin"), "{err}");
        assert!(matches!(
            Tokens::parse(Path::new("t"), "# nothing\n"),
            Err(TokensError::Empty(_))
        ));
    }

    #[test]
    fn without_tokens_only_loopback_is_open() {
        let open = Access::load(None, false, true).expect("open");
        assert_eq!(status(open.check(None, Scope::Write)), 200);
        let closed = Access::load(None, true, false).expect("closed");
        assert_eq!(status(closed.check(None, Scope::Read)), 401);
    }
}
