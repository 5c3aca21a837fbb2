//! Email over TLS to a real aiosmtpd whose certificate comes from a private CA: implicit
//! TLS (`smtps://`) and STARTTLS (`?tls=required`), the CA trusted through the
//! notifier's `smtp_ca` (`JOBMATCH_SMTP_CA`), and refused without it.

use std::time::Duration;

use jobmatch_core::messages::{Explanation, MatchFound};
use jobmatch_core::{Channel, Posting};
use jobmatch_e2e::process::Smtp;
use jobmatch_workers::notify::Delivery;

/// A CA, and a certificate for `localhost` it signed: (CA PEM, certificate PEM, key PEM).
fn private_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "jobmatch test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn found(n: usize) -> MatchFound {
    MatchFound {
        subscription: "tls".into(),
        posting: Posting {
            id: format!("greenhouse:tls:{n}"),
            source: "tls".into(),
            title: format!("Site Reliability Engineer {n}"),
            company: "Acme".into(),
            url: format!("https://boards.greenhouse.io/tls/jobs/{n}"),
            description: "Operate the mail relays.".into(),
            ..Default::default()
        },
        explanation: Explanation {
            score: 0.8,
            min_score: 0.5,
            matched_terms: vec![],
            missing_terms: vec![],
            filters: vec![],
        },
    }
}

fn delivery(url: &str, ca: Option<&str>) -> Delivery {
    Delivery::new(
        Some(url),
        ca.map(str::as_bytes),
        "jobmatch <jm@example.org>",
        2,
        Duration::from_secs(10),
    )
    .expect("delivery")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_over_implicit_tls_and_starttls_to_a_private_ca() {
    let (ca, cert, key) = private_ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert).expect("cert");
    std::fs::write(&key_path, key).expect("key");
    let to = Channel::Email {
        to: "ada@example.org".into(),
    };
    for (implicit, scheme) in [(true, "SMTPS"), (false, "STARTTLS")] {
        let smtp = Smtp::start_tls(&cert_path, &key_path, implicit).await;
        let url = if implicit {
            smtp.url.replacen("smtp://", "smtps://", 1)
        } else {
            format!("{}?tls=required", smtp.url)
        };
        // Without the CA the server's certificate is refused, and nothing is sent.
        let refused = delivery(&url, None).send(&to, &found(0)).await;
        let error = refused.expect_err("an unknown CA is refused").to_string();
        assert!(
            error.to_lowercase().contains("certificate"),
            "{scheme}: {error}"
        );
        // With it, notices go out (the second over the pooled connection).
        let trusting = delivery(&url, Some(&ca));
        for n in 1..=2 {
            trusting
                .send(&to, &found(n))
                .await
                .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        }
        trusting.close().await;
        let mails = jobmatch_e2e::mail::read_maildir(&smtp.maildir);
        assert_eq!(mails.len(), 2, "{scheme}");
        assert!(
            mails
                .iter()
                .any(|m| m.raw.contains("Site Reliability Engineer 2")),
            "{scheme}"
        );
    }
}
