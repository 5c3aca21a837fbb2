//! TLS setup shared by every client (reqwest, lettre, async-nats, tonic): rustls with the
//! `ring` provider, installed once per process by whoever builds a client first.

use std::sync::Once;

/// Installs `ring` as the process-wide rustls provider unless one is installed already.
/// Idempotent; call before building any HTTP, SMTP or NATS client.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
