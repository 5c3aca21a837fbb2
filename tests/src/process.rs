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

    /// SIGKILL, as a crash or the OOM killer would, and reap it.
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
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
    host: String,
    port: u16,
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Nats {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    fn spawn(host: &str, port: u16, dir: &Path) -> Proc {
        Proc::spawn(
            "nats-server",
            Command::new(env_path("JOBMATCH_NATS_SERVER"))
                .args(["-a", host, "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    }

    async fn wait_listening(host: &str, port: u16) {
        wait_for(
            "nats-server to listen",
            Duration::from_secs(20),
            || async move { port_open(host, port).await.then_some(()) },
        )
        .await;
    }

    /// Listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let proc = Self::spawn(host, port, dir.path());
        Self::wait_listening(host, port).await;
        Self {
            url: format!("nats://{host}:{port}"),
            host: host.to_owned(),
            port,
            proc,
            dir,
        }
    }

    /// Stops the server (SIGTERM: JetStream flushes to disk) and starts it again on the
    /// same port and store, as an operator's restart would.
    pub async fn restart(&mut self) {
        let old = std::mem::replace(
            &mut self.proc,
            Proc::spawn("sleep", Command::new("sleep").arg("0")),
        );
        let _ = old.stop().await;
        self.proc = Self::spawn(&self.host, self.port, self.dir.path());
        Self::wait_listening(&self.host, self.port).await;
    }
}

/// A real SMTP server (Python's aiosmtpd) writing every mail to a maildir.
pub struct Smtp {
    pub url: String,
    pub maildir: PathBuf,
    _proc: Proc,
    dir: tempfile::TempDir,
}

impl Smtp {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1").await
    }

    /// Listening on `host` (an address of this machine).
    pub async fn start_on(host: &str) -> Self {
        Self::start_with(host, "aiosmtpd.handlers.Mailbox", &[], None, &[]).await
    }

    /// Speaking TLS with `cert` and `key` (PEM files): from the first byte (SMTPS), or
    /// after a STARTTLS it requires before any mail.
    pub async fn start_tls(cert: &Path, key: &Path, implicit: bool) -> Self {
        let (cert_flag, key_flag) = if implicit {
            ("--smtpscert", "--smtpskey")
        } else {
            ("--tlscert", "--tlskey")
        };
        let args = [
            cert_flag.into(),
            cert.display().to_string(),
            key_flag.into(),
            key.display().to_string(),
        ];
        let mut smtp =
            Self::start_with("127.0.0.1", "aiosmtpd.handlers.Mailbox", &[], None, &args).await;
        smtp.url = smtp.url.replace("127.0.0.1", "localhost");
        smtp
    }

    /// With its maildir in memory (`/dev/shm`, where there is one): Python's `mailbox`
    /// fsyncs every mail it stores, which on a disk caps the server, not the client.
    pub async fn start_in_memory() -> Self {
        let shm = Path::new("/dev/shm");
        let root = shm.is_dir().then_some(shm);
        Self::start_with("127.0.0.1", "aiosmtpd.handlers.Mailbox", &[], root, &[]).await
    }

    /// A server that fails a seeded share of deliveries (`tests/fixtures/smtp`): 550 for
    /// recipients containing `bounce`, and 451, 421 or a dropped connection for the given
    /// shares of the rest. Each fault is a line in [`Smtp::faults`].
    pub async fn start_faulty(seed: u64, share_451: f64, share_421: f64, share_drop: f64) -> Self {
        let env = [
            ("SMTP_FAULTS_SEED", seed.to_string()),
            ("SMTP_FAULTS_451", share_451.to_string()),
            ("SMTP_FAULTS_421", share_421.to_string()),
            ("SMTP_FAULTS_DROP", share_drop.to_string()),
        ];
        Self::start_with("127.0.0.1", "faulty_smtpd.FaultyMailbox", &env, None, &[]).await
    }

    /// The faults injected so far, one name each (`550`, `451`, `421`, `drop`).
    pub fn faults(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("faults.log"))
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// `handler` with `env`, its maildir under `root` (default: the temp dir), and
    /// aiosmtpd's extra `args`.
    async fn start_with(
        host: &str,
        handler: &str,
        env: &[(&str, String)],
        root: Option<&Path>,
        args: &[String],
    ) -> Self {
        let dir = match root {
            Some(root) => tempfile::tempdir_in(root),
            None => tempfile::tempdir(),
        }
        .expect("temp dir");
        // aiosmtpd's Mailbox handler creates the maildir itself; it must not exist yet.
        let maildir = dir.path().join("mail");
        let port = free_port();
        let mut command = Command::new(env_path("JOBMATCH_SMTPD_PYTHON"));
        command
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("{host}:{port}")])
            .args(args)
            .args(["-c", handler])
            .arg(&maildir)
            .env("PYTHONPATH", repo_root().join("tests/fixtures/smtp"))
            .env("SMTP_FAULTS_LOG", dir.path().join("faults.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let proc = Proc::spawn("aiosmtpd", &mut command);
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
            dir,
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
