//! Child processes: nats-server, aiosmtpd and `jobmatch` itself, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{env_path, free_port, repo_root, wait_for};

/// A child process that is killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL after 20 s).
    pub async fn stop(mut self) -> Option<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// SIGTERM, then waits (blocking, for use in `Drop`) up to `grace` before SIGKILL.
    pub fn kill_and_wait(&mut self, grace: Duration) {
        if self.try_exit().is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let started = std::time::Instant::now();
        while started.elapsed() < grace {
            if self.try_exit().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.start_kill();
        let _ = std::process::Command::new("sleep").arg("0.2").status();
        let _ = self.try_exit();
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

async fn port_open(host: &str, port: u16) -> bool {
    tokio::net::TcpStream::connect((host, port)).await.is_ok()
}

/// A real nats-server with JetStream, on a random port, storing in a temp dir.
pub struct Nats {
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Nats {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let proc = Proc::spawn(
            "nats-server",
            Command::new(env_path("JOBMATCH_NATS_SERVER"))
                .args(["-a", host, "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for(
            "nats-server to listen",
            Duration::from_secs(20),
            || async move { port_open(host, port).await.then_some(()) },
        )
        .await;
        Self {
            url: format!("nats://{host}:{port}"),
            _proc: proc,
            _dir: dir,
        }
    }
}

/// A real SMTP server (Python's aiosmtpd) writing every mail to a maildir.
pub struct Smtp {
    pub url: String,
    pub maildir: PathBuf,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Smtp {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // aiosmtpd's Mailbox handler creates the maildir itself; it must not exist yet.
        let maildir = dir.path().join("mail");
        let port = free_port();
        let proc = Proc::spawn(
            "aiosmtpd",
            Command::new(env_path("JOBMATCH_SMTPD_PYTHON"))
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("{host}:{port}"),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                ])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for(
            "aiosmtpd to listen",
            Duration::from_secs(20),
            || async move { port_open(host, port).await.then_some(()) },
        )
        .await;
        Self {
            url: format!("smtp://{host}:{port}"),
            maildir,
            _proc: proc,
            _dir: dir,
        }
    }
}

/// The `jobmatch` binary this workspace builds.
pub fn jobmatch_bin() -> PathBuf {
    let path = std::env::var_os("JOBMATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join("target"));
            target.join("debug/jobmatch")
        });
    assert!(
        path.exists(),
        "{} not found: build it first (cargo build --bins) or set JOBMATCH_BIN",
        path.display()
    );
    path
}

/// Environment every `jobmatch` process in a scenario shares.
#[derive(Clone, Debug)]
pub struct JobmatchEnv {
    pub nats_url: String,
    pub smtp_url: Option<String>,
    pub data_dir: PathBuf,
}

impl JobmatchEnv {
    /// `jobmatch ARGS`, logging to `log` (appended), with fast test timings.
    pub fn command(&self, args: &[&str], log: &Path) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut c = Command::new(jobmatch_bin());
        c.args(args)
            .env("JOBMATCH_NATS_URL", &self.nats_url)
            .env("JOBMATCH_MODEL_DIR", env_path("JOBMATCH_MODEL_DIR"))
            .env("JOBMATCH_DATA_DIR", &self.data_dir)
            .env("JOBMATCH_HTTP_TIMEOUT", "2s")
            .env("JOBMATCH_NOTIFY_BACKOFF", "100ms")
            .env("JOBMATCH_NOTIFY_ATTEMPTS", "3")
            .env("JOBMATCH_LOG", "info,jobmatch_workers=debug")
            .env_remove("JOBMATCH_QDRANT_URL")
            .env_remove("JOBMATCH_LISTEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        match &self.smtp_url {
            Some(url) => c.env("JOBMATCH_SMTP_URL", url),
            None => c.env_remove("JOBMATCH_SMTP_URL"),
        };
        c
    }

    pub fn spawn(&self, args: &[&str], log: &Path) -> Proc {
        Proc::spawn(
            &format!("jobmatch {}", args.join(" ")),
            &mut self.command(args, log),
        )
    }
}
