//! A real Kubernetes control plane for the operator tests: etcd, kube-apiserver and
//! kube-controller-manager v1.20.2 (garbage collection, Deployment → ReplicaSet), on
//! random loopback ports in a temp dir. No scheduler or kubelet: Pods stay Pending.
//! Binaries come from `scripts/k8s-test-cluster.sh` (`JOBMATCH_K8S_BIN`).
//!
//! Two identities: `admin` (system:masters, for the test itself) and the operator's
//! ServiceAccount by token, so the operator runs with exactly the chart's RBAC. Every
//! write request is recorded in an audit log, to count the operator's writes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::process::Proc;
use crate::{env_path, free_port, wait_for};

pub const OPERATOR_USER: &str = "system:serviceaccount:jobmatch:jobmatch-operator";
const OPERATOR_TOKEN: &str = "jobmatch-operator-test-token";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Kubeconfig of the operator's ServiceAccount.
    pub operator_kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    procs: Vec<Proc>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

impl Cluster {
    pub async fn start() -> Self {
        let bin = env_path("JOBMATCH_K8S_BIN");
        let dir = tempfile::tempdir().expect("temp dir");
        let d_buf = dir.path().to_path_buf();
        let d = d_buf.as_path();
        let pki = d.join("pki");
        std::fs::create_dir_all(&pki).expect("pki dir");
        openssl(
            &pki,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=jobmatch-test-ca",
            ],
        );
        std::fs::write(pki.join("server.ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n").expect("ext");
        openssl(
            &pki,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "apiserver.key",
                "-out",
                "apiserver.csr",
                "-subj",
                "/CN=kube-apiserver",
            ],
        );
        openssl(
            &pki,
            &[
                "x509",
                "-req",
                "-in",
                "apiserver.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "apiserver.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        std::fs::write(pki.join("client.ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n").expect("ext");
        openssl(
            &pki,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "admin.key",
                "-out",
                "admin.csr",
                "-subj",
                "/O=system:masters/CN=admin",
            ],
        );
        openssl(
            &pki,
            &[
                "x509",
                "-req",
                "-in",
                "admin.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "admin.crt",
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
        );
        openssl(&pki, &["genrsa", "-out", "sa.key", "2048"]);
        openssl(&pki, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
        std::fs::write(
            pki.join("tokens.csv"),
            format!("{OPERATOR_TOKEN},{OPERATOR_USER},operator-uid,\"system:serviceaccounts,system:serviceaccounts:jobmatch\"\n"),
        )
        .expect("tokens");
        let audit_policy = d.join("audit-policy.yaml");
        std::fs::write(
            &audit_policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n- level: None\n",
        )
        .expect("audit policy");
        let audit_log = d.join("audit.log");

        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let log = |name: &str| {
            std::fs::File::create(d.join(format!("{name}.log")))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let mut procs = Vec::new();
        procs.push(Proc::spawn(
            "etcd",
            Command::new(bin.join("etcd"))
                .args(["--name", "test", "--data-dir"])
                .arg(d.join("etcd"))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
                .arg(format!(
                    "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
                ))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=test=http://127.0.0.1:{peer_port}"
                ))
                .stdout(log("etcd-out"))
                .stderr(log("etcd")),
        ));
        let p = |f: &str| pki.join(f).display().to_string();
        procs.push(Proc::spawn(
            "kube-apiserver",
            Command::new(bin.join("kube-apiserver"))
                .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
                .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
                .arg(format!("--secure-port={api_port}"))
                .arg("--insecure-port=0")
                .arg(format!("--cert-dir={}", d.join("certs").display()))
                .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
                .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
                .arg(format!("--client-ca-file={}", p("ca.crt")))
                .arg(format!("--token-auth-file={}", p("tokens.csv")))
                .arg("--authorization-mode=RBAC")
                .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
                .arg(format!("--service-account-key-file={}", p("sa.pub")))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    p("sa.key")
                ))
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg(format!("--audit-policy-file={}", audit_policy.display()))
                .arg(format!("--audit-log-path={}", audit_log.display()))
                .arg("--audit-log-format=json")
                // Never rotate (the default rotates at 100 MB): counts read the one file.
                .arg("--audit-log-maxsize=100000")
                .stdout(log("apiserver-out"))
                .stderr(log("apiserver")),
        ));
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = d.join("kubeconfig");
        let admin = format!(
            "{{client-certificate: \"{}\", client-key: \"{}\"}}",
            p("admin.crt"),
            p("admin.key")
        );
        write_kubeconfig(&kubeconfig, &server, &p("ca.crt"), &admin);
        let operator_kubeconfig = d.join("operator-kubeconfig");
        write_kubeconfig(
            &operator_kubeconfig,
            &server,
            &p("ca.crt"),
            &format!("{{token: {OPERATOR_TOKEN}}}"),
        );
        let mut cluster = Cluster {
            dir,
            bin,
            kubeconfig,
            operator_kubeconfig,
            audit_log,
            procs,
        };
        let kubectl = cluster.bin.join("kubectl");
        let kc = cluster.kubeconfig.clone();
        wait_for(
            "kube-apiserver to be ready",
            Duration::from_secs(90),
            || {
                let kubectl = kubectl.clone();
                let kc = kc.clone();
                async move {
                    let out = Command::new(&kubectl)
                        .arg("--kubeconfig")
                        .arg(&kc)
                        .args(["get", "--raw", "/readyz"])
                        .output()
                        .await
                        .ok()?;
                    out.status.success().then_some(())
                }
            },
        )
        .await;
        cluster.procs.push(Proc::spawn(
            "kube-controller-manager",
            Command::new(cluster.bin.join("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
                .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
                .arg(format!("--service-account-private-key-file={}", p("sa.key")))
                .arg(format!("--root-ca-file={}", p("ca.crt")))
                .arg("--use-service-account-credentials=false")
                .arg("--controllers=*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach")
                .stdout(log("controller-manager-out"))
                .stderr(log("controller-manager")),
        ));
        cluster
            .kubectl_ok(&["create", "namespace", "jobmatch"])
            .await;
        cluster
    }

    /// Runs kubectl as admin: (success, stdout, stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_input(args, None).await
    }

    pub async fn kubectl_input(
        &self,
        args: &[&str],
        input: Option<&str>,
    ) -> (bool, String, String) {
        run_tool(&self.bin.join("kubectl"), &self.kubeconfig, args, input).await
    }

    /// Runs kubectl and fails the test if it fails.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    pub async fn apply_yaml(&self, yaml: &str) -> (bool, String, String) {
        self.kubectl_input(&["apply", "-f", "-"], Some(yaml)).await
    }

    pub async fn helm(&self, args: &[&str]) -> (bool, String, String) {
        run_tool(&self.bin.join("helm"), &self.kubeconfig, args, None).await
    }

    /// Write requests by `user` in the audit log, as (verb, resource, name), optionally
    /// only those after line `skip` (see `audit_lines`).
    pub fn writes_by(&self, user: &str, skip: usize) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .skip(skip)
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|e| e["user"]["username"] == user)
            .map(|e| {
                let r = &e["objectRef"];
                let resource = match r["subresource"].as_str() {
                    Some(sub) => format!("{}/{sub}", r["resource"].as_str().unwrap_or("")),
                    None => r["resource"].as_str().unwrap_or("").to_owned(),
                };
                (
                    e["verb"].as_str().unwrap_or("").to_owned(),
                    resource,
                    r["name"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }

    /// Lines in the audit log so far: a mark for `writes_by`.
    pub fn audit_lines(&self) -> usize {
        std::fs::read_to_string(&self.audit_log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// A kubeconfig for one user (`user` is its YAML flow mapping), namespace `jobmatch`.
fn write_kubeconfig(path: &Path, server: &str, ca: &str, user: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: user\n  user: {user}\ncontexts:\n- name: test\n  context: {{cluster: test, user: user, namespace: jobmatch}}\ncurrent-context: test\n"
    );
    std::fs::write(path, text).expect("writing a kubeconfig");
}

async fn run_tool(
    tool: &Path,
    kubeconfig: &Path,
    args: &[&str],
    input: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(tool)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", tool.display()));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).await.expect("write stdin");
    }
    let out = child.wait_with_output().await.expect("tool output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
