//! A real Kubernetes cluster for the operator and cluster tests: etcd, kube-apiserver
//! and kube-controller-manager v1.20.2 (garbage collection, Deployment → ReplicaSet) on
//! random ports in a temp dir, and, with [`Cluster::start_with_node`], a node whose pods
//! run (kube-scheduler, containerd, kubelet: `k8s_node`). Without a node, Pods stay
//! Pending. Binaries come from `scripts/k8s-test-cluster.sh` (`JOBMATCH_K8S_BIN`).
//!
//! Two identities: `admin` (system:masters, for the test itself) and the operator's
//! ServiceAccount by token, so an operator run from the host has exactly the chart's
//! RBAC (in the node cluster the operator's pod uses its real ServiceAccount token).
//! Every write request is recorded in an audit log, to count the operator's writes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::k8s_node::{self, Node};
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
    /// The API server's address and port.
    pub api_host: String,
    pub api_port: u16,
    procs: Vec<Proc>,
    node: Option<Node>,
}

pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A key and a certificate signed by the test CA in `pki`: `NAME.key`, `NAME.crt`.
pub(crate) fn certificate(pki: &Path, name: &str, subject: &str, ext: &str) {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    openssl(
        pki,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
    );
    openssl(
        pki,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}

impl Cluster {
    /// The control plane alone, on loopback.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1", None).await
    }

    /// The control plane and a node whose pods run. The API server listens on the pod
    /// network's host address ([`k8s_node::HOST_IP`]), which pods reach and which is
    /// local to the host too. One at a time per machine (the kubelet's host paths).
    pub async fn start_with_node() -> Self {
        let mut node = Node::prepare();
        let mut cluster = Self::start_on(k8s_node::HOST_IP, Some(&node)).await;
        node.start(&cluster).await;
        cluster.node = Some(node);
        cluster
    }

    /// The node, when there is one.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    async fn start_on(host: &str, node: Option<&Node>) -> Self {
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
        std::fs::write(pki.join("server.ext"), format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:{host},IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")).expect("ext");
        certificate(&pki, "apiserver", "/CN=kube-apiserver", "server.ext");
        std::fs::write(pki.join("client.ext"), "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n").expect("ext");
        certificate(&pki, "admin", "/O=system:masters/CN=admin", "client.ext");
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
        let mut apiserver = Command::new(bin.join("kube-apiserver"));
        apiserver
            .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
            .arg(format!("--bind-address={host}"))
            .arg(format!("--advertise-address={host}"))
            .arg(format!("--secure-port={api_port}"))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", d.join("certs").display()))
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--token-auth-file={}", p("tokens.csv")))
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
            .stderr(log("apiserver"));
        if node.is_some() {
            // The kubelet reaches the API server as system:node:<name>; the API server
            // reaches the kubelet (logs, exec) at the node's InternalIP.
            apiserver
                .arg("--authorization-mode=Node,RBAC")
                .arg("--kubelet-preferred-address-types=InternalIP,Hostname");
        } else {
            apiserver.arg("--authorization-mode=RBAC");
        }
        procs.push(Proc::spawn("kube-apiserver", &mut apiserver));
        let server = format!("https://{host}:{api_port}");
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
        if let Some(node) = node {
            for p in &procs {
                node.record_pid(&p.name, p.pid());
            }
        }
        let mut cluster = Cluster {
            dir,
            bin,
            kubeconfig,
            operator_kubeconfig,
            audit_log,
            api_host: host.to_owned(),
            api_port,
            procs,
            node: None,
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
        // Without a node there is nothing for the node, volume or attach controllers to do.
        let controllers = if node.is_some() {
            "--controllers=*,-nodeipam,-service,-route,-cloud-node-lifecycle"
        } else {
            "--controllers=*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach"
        };
        cluster.procs.push(Proc::spawn(
            "kube-controller-manager",
            Command::new(cluster.bin.join("kube-controller-manager"))
                .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
                .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
                .arg(format!(
                    "--service-account-private-key-file={}",
                    p("sa.key")
                ))
                .arg(format!("--root-ca-file={}", p("ca.crt")))
                .arg("--use-service-account-credentials=false")
                .arg(controllers)
                .stdout(log("controller-manager-out"))
                .stderr(log("controller-manager")),
        ));
        if let Some(node) = node {
            let cm = cluster.procs.last().and_then(Proc::pid);
            node.record_pid("kube-controller-manager", cm);
            cluster.procs.push(Proc::spawn(
                "kube-scheduler",
                Command::new(cluster.bin.join("kube-scheduler"))
                    .arg(format!("--kubeconfig={}", cluster.kubeconfig.display()))
                    .args(["--leader-elect=false", "--port=0", "--secure-port=0"])
                    .stdout(log("scheduler-out"))
                    .stderr(log("scheduler")),
            ));
            node.record_pid("kube-scheduler", cluster.procs.last().and_then(Proc::pid));
        }
        cluster
            .kubectl_ok(&["create", "namespace", "jobmatch"])
            .await;
        cluster
    }

    /// The test CA's folder (ca.crt, ca.key) and the API server's URL, for the node.
    pub(crate) fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    pub fn server(&self) -> String {
        format!("https://{}:{}", self.api_host, self.api_port)
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

impl Drop for Cluster {
    /// With a node: its pods go first (so the kubelet unmounts and tears down their
    /// sandboxes), then the kubelet, the control plane, containerd and what they left on
    /// the host. The control plane alone simply stops.
    fn drop(&mut self) {
        if let Some(node) = self.node.as_mut() {
            node.delete_workloads(&self.bin.join("kubectl"), &self.kubeconfig);
            node.stop_kubelet();
            for p in self.procs.iter_mut().rev() {
                p.kill_and_wait(Duration::from_secs(10));
            }
            node.teardown();
        }
    }
}

/// A kubeconfig for one user (`user` is its YAML flow mapping), namespace `jobmatch`.
pub(crate) fn write_kubeconfig(path: &Path, server: &str, ca: &str, user: &str) {
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
