//! A pool of SMTP connections to one server, opened with `TCP_NODELAY`.
//!
//! Why not lettre's own transport: it leaves Nagle's algorithm on and writes a message's
//! body and its `\r\n.\r\n` terminator in two writes, so the terminator waits until the
//! server acknowledges the body, and a server that holds its reply until the terminator
//! acknowledges only when its delayed-ACK timer fires (40 ms on Linux). Every mail then
//! took ≈ 45 ms on an idle loopback server. This module opens the socket itself with
//! `TCP_NODELAY`, and otherwise connects as lettre does (the same URLs, STARTTLS, implicit
//! TLS, AUTH) before handing the stream to lettre's SMTP client; the pool is deadpool's.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, RecycleError, RecycleResult};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt};

/// An idle connection older than this is closed rather than reused: servers drop idle
/// clients after a few minutes (RFC 5321 suggests 5), and reconnecting is cheap.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is checked with `NOOP` before it is reused.
const CHECK_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("SMTP URL: {0}")]
    Url(String),
    #[error("SMTP CA certificates: {0}")]
    Ca(String),
    #[error("connecting to {server}: {source}")]
    Connect { server: String, source: io::Error },
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("SMTP connection pool: {0}")]
    Pool(String),
    #[error("no answer from {server} within {after:?}")]
    TimedOut { server: String, after: Duration },
}

impl SmtpError {
    /// Whether sending the same message again can never succeed.
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpError::Url(_) | SmtpError::Ca(_) => true,
            SmtpError::Smtp(e) => e.is_permanent(),
            SmtpError::Connect { .. } | SmtpError::Pool(_) | SmtpError::TimedOut { .. } => false,
        }
    }
}

/// How the connection is secured.
#[derive(Clone)]
enum Security {
    /// Plain text (`smtp://`).
    None,
    /// STARTTLS when the server offers it (`smtp://…?tls=opportunistic`).
    Opportunistic(TlsParameters),
    /// STARTTLS, or fail (`smtp://…?tls=required`).
    Required(TlsParameters),
    /// TLS from the first byte (`smtps://`).
    Implicit(TlsParameters),
}

/// Where and how to connect, as read from an SMTP URL.
#[derive(Clone)]
pub struct SmtpServer {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl SmtpServer {
    /// Reads the URL forms lettre's `from_url` accepts: `smtp://host[:port]` (25, plain),
    /// `smtp://host?tls=required|opportunistic` (587, STARTTLS), `smtps://host` (465,
    /// implicit TLS); `user:password@` (percent-encoded) for AUTH, and a path as the EHLO
    /// name. `ca_pem` adds CA certificates (PEM) the server's certificate may chain to,
    /// besides the public roots: a relay with a private CA.
    pub fn from_url(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, SmtpError> {
        let bad = |why: String| SmtpError::Url(why);
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let roots = ca_pem.map(ca_certificates).transpose()?;
        let parameters = || {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(roots) = &roots {
                builder = builder.add_root_certificate(roots.clone());
            }
            builder
                .build()
                .map_err(|e| bad(format!("TLS for {host}: {e}")))
        };
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::None, 25),
            ("smtp", Some("required")) => (Security::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Security::Opportunistic(parameters()?), 587),
            ("smtps", None) => (Security::Implicit(parameters()?), 465),
            (scheme, tls) => {
                return Err(bad(format!(
                    "unknown scheme {scheme:?} or tls={tls:?} (use smtp://, \
                     smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://)"
                )));
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| bad(format!("credentials: {e}")))
        };
        let credentials = parsed
            .password()
            .map(|password| {
                Ok::<_, SmtpError>(Credentials::new(
                    decode(parsed.username())?,
                    decode(password)?,
                ))
            })
            .transpose()?;
        let name = parsed.path().trim_matches('/');
        let hello = if name.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(name.to_owned())
        };
        Ok(Self {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Opens one connection: TCP with `TCP_NODELAY`, TLS as configured, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let connect_error = |source| SmtpError::Connect {
            server: self.address(),
            source,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(connect_error)?;
        tcp.set_nodelay(true).map_err(connect_error)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(parameters) => {
                #[allow(deprecated)]
                let mut tls = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                tls.upgrade_tls(parameters.clone()).await?;
                Box::new(ImplicitTls(tls.compat()))
            }
            _ => Box::new(tcp),
        };
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        match &self.security {
            Security::Opportunistic(parameters) if connection.can_starttls() => {
                connection.starttls(parameters.clone(), &self.hello).await?;
            }
            Security::Required(parameters) => {
                connection.starttls(parameters.clone(), &self.hello).await?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(connection)
    }
}

/// The CA certificates in `pem`; none is an error (lettre would accept an empty set).
fn ca_certificates(pem: &[u8]) -> Result<lettre::transport::smtp::client::Certificate, SmtpError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let found = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SmtpError::Ca(e.to_string()))?;
    if found.is_empty() {
        return Err(SmtpError::Ca("no PEM certificate found".into()));
    }
    lettre::transport::smtp::client::Certificate::from_pem(pem)
        .map_err(|e| SmtpError::Ca(e.to_string()))
}

/// A stream already wrapped in TLS, handed to lettre as if it were a plain one.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(Compat<AsyncNetworkStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}

/// One pooled connection; `clean` is false while a send is under way, so a send cut off
/// (by a timeout) never leaves a half-spoken connection for the next one.
struct Connection {
    smtp: AsyncSmtpConnection,
    clean: bool,
}

struct Manager(SmtpServer);

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = SmtpError;

    async fn create(&self) -> Result<Connection, SmtpError> {
        Ok(Connection {
            smtp: self.0.connect().await?,
            clean: true,
        })
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        metrics: &Metrics,
    ) -> RecycleResult<SmtpError> {
        if !connection.clean || connection.smtp.has_broken() {
            return Err(RecycleError::message("broken"));
        }
        let idle = metrics.last_used();
        if idle > MAX_IDLE {
            return Err(RecycleError::message("idle too long"));
        }
        if idle > CHECK_AFTER && !connection.smtp.test_connected().await {
            return Err(RecycleError::message("closed by the server"));
        }
        Ok(())
    }
}

/// Connections to one SMTP server, at most `size` open at once.
pub struct SmtpPool {
    pool: managed::Pool<Manager>,
}

impl SmtpPool {
    pub fn new(server: SmtpServer, size: usize) -> Result<Self, SmtpError> {
        let pool = managed::Pool::builder(Manager(server))
            .max_size(size.max(1))
            .build()
            .map_err(|e| SmtpError::Pool(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Sends one message over a pooled connection (opened if none is idle), waiting for
    /// a free connection, connecting and sending within `timeout`. A connection that
    /// failed or was cut off is closed, never reused.
    pub async fn send(
        &self,
        envelope: &Envelope,
        email: &[u8],
        timeout: Duration,
    ) -> Result<(), SmtpError> {
        tokio::time::timeout(timeout, self.send_now(envelope, email))
            .await
            .unwrap_or_else(|_| {
                Err(SmtpError::TimedOut {
                    server: self.pool.manager().0.address(),
                    after: timeout,
                })
            })
    }

    async fn send_now(&self, envelope: &Envelope, email: &[u8]) -> Result<(), SmtpError> {
        let mut connection = self.pool.get().await.map_err(|e| match e {
            managed::PoolError::Backend(e) => e,
            other => SmtpError::Pool(other.to_string()),
        })?;
        connection.clean = false;
        match connection.smtp.send(envelope, email).await {
            Ok(_) => {
                connection.clean = true;
                Ok(())
            }
            Err(e) => {
                // lettre has already sent QUIT and closed it; free its slot now.
                drop(Object::take(connection));
                Err(e.into())
            }
        }
    }

    /// Says QUIT on every idle connection and closes the pool.
    pub async fn close(&self) {
        let idle = self.pool.retain(|_, _| false).removed;
        self.pool.close();
        futures::future::join_all(idle.into_iter().map(|mut c| async move {
            let _ = c.smtp.quit().await;
        }))
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> SmtpServer {
        crate::tls::install_crypto_provider();
        SmtpServer::from_url(url, None).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls_read_as_lettre_reads_them() {
        let plain = server("smtp://127.0.0.1:2525");
        assert_eq!(plain.address(), "127.0.0.1:2525");
        assert!(matches!(plain.security, Security::None));
        assert!(plain.credentials.is_none());

        let required = server("smtp://mail.example.org?tls=required");
        assert_eq!(required.address(), "mail.example.org:587");
        assert!(matches!(required.security, Security::Required(_)));

        let opportunistic = server("smtp://mail.example.org:2587?tls=opportunistic");
        assert_eq!(opportunistic.port, 2587);
        assert!(matches!(opportunistic.security, Security::Opportunistic(_)));

        let implicit = server("smtps://ada%40example.org:p%2Fss@mail.example.org/client.example");
        assert_eq!(implicit.address(), "mail.example.org:465");
        assert!(matches!(implicit.security, Security::Implicit(_)));
        assert_eq!(
            implicit.credentials,
            Some(Credentials::new("ada@example.org".into(), "p/ss".into()))
        );
        assert_eq!(implicit.hello, ClientId::Domain("client.example".into()));

        assert_eq!(server("smtp://[::1]:25").host, "::1");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("http://mail.example.org", "unknown scheme \"http\""),
            ("smtp://mail.example.org?tls=always", "tls=Some(\"always\")"),
            ("not a url", "relative URL"),
            ("smtp://", "host"),
        ] {
            let error = SmtpServer::from_url(url, None).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(says)),
                "{url}: {error:?}"
            );
            assert!(
                SmtpServer::from_url(url, None)
                    .err()
                    .is_some_and(|e| e.is_permanent())
            );
        }
        crate::tls::install_crypto_provider();
        let ca = SmtpServer::from_url("smtps://mail.example.org", Some(b"not a certificate"));
        let error = ca.err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.starts_with("SMTP CA certificates")),
            "{error:?}"
        );
    }
}
