//! The test cluster's node: Debian's containerd (runc, the CNI bridge plugin) and a
//! kubelet v1.20.2, so that pods really run, from images imported with
//! `ctr -n k8s.io images import` (no registry is reachable).
//!
//! The pods' network is a bridge the harness makes itself, [`BRIDGE`], holding the host
//! address [`HOST_IP`]: pods reach the host's servers there (the API server, NATS, the
//! SMTP server, the boards), and the host reaches pods at their bridge addresses. No
//! traffic leaves the machine: no masquerade, no routes or iptables rules added. There
//! is no kube-proxy and no cluster DNS.
//!
//! The kubelet writes to fixed host paths whatever its flags (`/var/log/pods`,
//! `/var/lib/kubelet/device-plugins`, shim sockets in `/run/containerd/s`), so one node
//! runs per machine at a time, with its state under the fixed [`RUN_DIR`]. Teardown
//! removes what it made: processes by PID, mounts, the bridge, pod cgroups, the host
//! paths that did not exist before, and the sysctls the kubelet changes are restored.
//! A run that was killed is cleaned up by the next one from what it recorded there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::k8s::{Cluster, certificate, write_kubeconfig};
use crate::{env_path, free_port};

/// The host's address on the pods' network.
pub const HOST_IP: &str = "10.244.0.1";
pub const BRIDGE: &str = "jobmatch0";
const SUBNET: &str = "10.244.0.0/24";
const NETWORK: &str = "jobmatch-test";
/// The node's name: an IP, which the kubelet takes as the node's InternalIP.
pub const NODE_NAME: &str = "127.0.0.1";
/// Where the node keeps its state (fixed, so a later run finds a killed run's leftovers).
pub const RUN_DIR: &str = "/var/tmp/jobmatch-k8s-node";
/// Changed by the kubelet at start (protect-kernel-defaults is off): saved, restored.
const SYSCTLS: &[&str] = &[
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
];
/// Written by kubelet 1.20 or containerd whatever their flags.
const HOST_PATHS: &[&str] = &[
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/kubelet",
    "/usr/libexec/kubernetes",
    "/run/containerd",
];

pub struct Node {
    run: PathBuf,
    daemons: Vec<(&'static str, Child)>,
    /// When the cluster began to start.
    pub started: Instant,
    /// From the cluster's start to the node being Ready.
    pub ready_after: Option<Duration>,
    torn_down: bool,
}

fn run_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn must(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM, up to `grace`, then SIGKILL: a process that is not our child (a killed
/// run's leftover), by PID.
fn stop_pid(pid: u32, grace: Duration) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    if !alive() {
        return;
    }
    run_quiet("kill", &["-TERM", &pid.to_string()]);
    let started = Instant::now();
    while alive() && started.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive() {
        run_quiet("kill", &["-KILL", &pid.to_string()]);
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn stop_child(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    run_quiet("kill", &["-TERM", &child.id().to_string()]);
    let started = Instant::now();
    while started.elapsed() < grace {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Node {
    /// Cleans up after a killed run, then makes the run directory and the bridge (the API
    /// server binds [`HOST_IP`], so the bridge comes before the control plane).
    pub fn prepare() -> Self {
        let started = Instant::now();
        let run = PathBuf::from(RUN_DIR);
        if run.exists() {
            eprintln!("k8s node: cleaning up after an earlier run in {RUN_DIR}");
            let mut stale = Node {
                run: run.clone(),
                daemons: Vec::new(),
                started,
                ready_after: None,
                torn_down: false,
            };
            stale.stop_recorded();
            stale.teardown();
        }
        for sub in ["pids", "logs", "containerd", "cni", "cni-ipam", "kubelet"] {
            std::fs::create_dir_all(run.join(sub)).expect("node run dir");
        }
        // What the kubelet will change and which host paths it will create: recorded
        // before it starts, so that teardown (even a later run's) restores them.
        let saved = SYSCTLS
            .iter()
            .filter_map(|k| {
                let v = output("sysctl", &["-n", k]);
                (!v.trim().is_empty()).then(|| format!("{k}={}", v.trim()))
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(run.join("sysctl.saved"), saved).expect("save sysctls");
        let created: Vec<&str> = HOST_PATHS
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect();
        std::fs::write(run.join("hostpaths.created"), created.join("\n")).expect("host paths");
        run_quiet("ip", &["link", "del", BRIDGE]);
        must("ip", &["link", "add", BRIDGE, "type", "bridge"]);
        must(
            "ip",
            &["addr", "add", &format!("{HOST_IP}/24"), "dev", BRIDGE],
        );
        must("ip", &["link", "set", BRIDGE, "up"]);
        Node {
            run,
            daemons: Vec::new(),
            started,
            ready_after: None,
            torn_down: false,
        }
    }

    /// Remembers a process of the cluster, so that a later run can stop it if this one
    /// is killed before its teardown.
    pub fn record_pid(&self, name: &str, pid: Option<u32>) {
        if let Some(pid) = pid {
            let _ = std::fs::write(self.run.join("pids").join(name), pid.to_string());
        }
    }

    fn socket(&self) -> PathBuf {
        self.run.join("containerd/containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        let socket = self.socket();
        let mut all = vec![
            "--address",
            socket.to_str().unwrap_or_default(),
            "-n",
            "k8s.io",
        ];
        all.extend_from_slice(args);
        Command::new("ctr")
            .args(&all)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) {
        let log = std::fs::File::create(self.run.join("logs").join(format!("{name}.log")))
            .expect("node log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        self.record_pid(name, Some(child.id()));
        self.daemons.push((name, child));
    }

    /// Starts containerd and the kubelet and waits for the node to be Ready.
    pub async fn start(&mut self, cluster: &Cluster) {
        let run = self.run.display().to_string();
        let pki = cluster.pki();
        certificate(
            &pki,
            "node",
            &format!("/O=system:nodes/CN=system:node:{NODE_NAME}"),
            "client.ext",
        );
        let node_kubeconfig = self.run.join("node.kubeconfig");
        let p = |f: &str| pki.join(f).display().to_string();
        write_kubeconfig(
            &node_kubeconfig,
            &cluster.server(),
            &p("ca.crt"),
            &format!(
                "{{client-certificate: \"{}\", client-key: \"{}\"}}",
                p("node.crt"),
                p("node.key")
            ),
        );
        let pause_ref = std::env::var("JOBMATCH_K8S_PAUSE_REF")
            .unwrap_or_else(|_| "localhost/jobmatch-test/pause:v1".into());
        let containerd = include_str!("../k8s-node/containerd.toml.in")
            .replace("@RUN@", &run)
            .replace("@PAUSE@", &pause_ref);
        std::fs::write(self.run.join("containerd.toml"), containerd).expect("containerd.toml");
        let cni = include_str!("../k8s-node/10-bridge.conflist.in")
            .replace("@RUN@", &run)
            .replace("@NETWORK@", NETWORK)
            .replace("@BRIDGE@", BRIDGE)
            .replace("@SUBNET@", SUBNET)
            .replace("@GATEWAY@", HOST_IP);
        std::fs::write(self.run.join("cni/10-bridge.conflist"), cni).expect("cni conf");
        let config = self.run.join("containerd.toml");
        self.spawn(
            "containerd",
            Command::new("/usr/bin/containerd")
                .arg("--config")
                .arg(&config),
        );
        let started = Instant::now();
        while !self.ctr(&["version"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "containerd did not start:\n{}",
                self.log("containerd")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.import(&env_path("JOBMATCH_K8S_PAUSE_IMAGE"));

        let bin = env_path("JOBMATCH_K8S_BIN");
        let (port, healthz) = (free_port(), free_port());
        let mut kubelet = Command::new(bin.join("kubelet"));
        kubelet
            .arg("--v=1")
            .arg(format!("--kubeconfig={}", node_kubeconfig.display()))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--read-only-port=0")
            .arg("--healthz-bind-address=127.0.0.1")
            .arg(format!("--healthz-port={healthz}"))
            .arg("--anonymous-auth=true")
            .arg("--authorization-mode=AlwaysAllow")
            .arg("--container-runtime=remote")
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                self.socket().display()
            ))
            .arg("--runtime-request-timeout=5m")
            .arg("--cgroup-driver=cgroupfs")
            .arg("--cgroups-per-qos=false")
            .arg("--enforce-node-allocatable=")
            .arg("--fail-swap-on=false")
            .arg("--oom-score-adj=0")
            .arg("--make-iptables-util-chains=false")
            .arg(format!("--root-dir={run}/kubelet"))
            .arg(format!("--cert-dir={run}/kubelet/pki"))
            .arg(format!("--volume-plugin-dir={run}/kubelet/volume-plugins"))
            .arg(format!("--pod-infra-container-image={pause_ref}"))
            .arg("--eviction-hard=memory.available<10Mi,nodefs.available<1%,imagefs.available<1%")
            .arg("--image-gc-high-threshold=100")
            // Quick pod status for the tests' waits.
            .arg("--node-status-update-frequency=4s");
        self.spawn("kubelet", &mut kubelet);
        let ready = crate::wait_for("the node to be Ready", Duration::from_secs(180), || async {
            let (_, out, _) = cluster
                .kubectl(&[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .await;
            (out.trim() == "True").then_some(())
        });
        ready.await;
        self.ready_after = Some(self.started.elapsed());
        self.restore_sysctls();
    }

    /// Imports an OCI archive into the node's image store; its names are kept.
    pub fn import(&self, archive: &Path) {
        let out = self.ctr(&["images", "import", archive.to_str().unwrap_or_default()]);
        assert!(
            out.status.success(),
            "importing {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Gives an imported image a second name (a new tag for an upgrade).
    pub fn tag(&self, image: &str, new_name: &str) {
        let out = self.ctr(&["images", "tag", "--force", image, new_name]);
        assert!(
            out.status.success(),
            "tagging {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The names of the images on the node.
    pub fn images(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.ctr(&["images", "ls", "-q"]).stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.run.join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    fn restore_sysctls(&self) {
        let saved = std::fs::read_to_string(self.run.join("sysctl.saved")).unwrap_or_default();
        for line in saved.lines().filter(|l| l.contains('=')) {
            run_quiet("sysctl", &["-q", "-w", line]);
        }
    }

    /// Deletes every workload so that the kubelet tears their sandboxes, network
    /// namespaces and volume mounts down itself; waits up to a minute.
    pub fn delete_workloads(&self, kubectl: &Path, kubeconfig: &Path) {
        let kc = |args: &[&str]| {
            Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(args)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
        };
        let _ = kc(&[
            "delete",
            "deploy,rs,sts,ds,job,pod",
            "--all",
            "--all-namespaces",
            "--wait=false",
            "--grace-period=2",
        ]);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            match kc(&["get", "pods", "--all-namespaces", "-o", "name"]) {
                Ok(out) if out.status.success() && out.stdout.is_empty() => break,
                Ok(_) => std::thread::sleep(Duration::from_millis(500)),
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    pub fn stop_kubelet(&mut self) {
        for (name, child) in &mut self.daemons {
            if *name == "kubelet" {
                stop_child(child, Duration::from_secs(10));
            }
        }
    }

    /// Stops processes a killed run recorded (each only if it still looks like ours).
    fn stop_recorded(&self) {
        let Ok(entries) = std::fs::read_dir(self.run.join("pids")) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ");
            let ours = ["kubelet", "containerd", "kube-", "etcd"]
                .iter()
                .any(|n| cmdline.contains(n));
            if ours {
                stop_pid(pid, Duration::from_secs(10));
            }
        }
    }

    /// Stops containerd and the kubelet and removes everything the node made on the
    /// host. Idempotent; also what a later run does after a killed one.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        self.stop_kubelet();
        let socket = self.socket();
        if socket.exists() {
            let tasks =
                String::from_utf8_lossy(&self.ctr(&["tasks", "ls", "-q"]).stdout).into_owned();
            for task in tasks.lines() {
                self.ctr(&["tasks", "kill", "-s", "KILL", task]);
            }
            std::thread::sleep(Duration::from_millis(500));
            for task in tasks.lines() {
                self.ctr(&["tasks", "rm", "-f", task]);
            }
        }
        for (name, child) in &mut self.daemons {
            if *name == "containerd" {
                stop_child(child, Duration::from_secs(10));
            }
        }
        self.stop_recorded();
        // Shims outlive containerd; theirs name our socket.
        let pattern = format!("containerd-shim-runc-v2 .*-address {}", socket.display());
        for pid in output("pgrep", &["-f", &pattern]).split_whitespace() {
            run_quiet("kill", &["-KILL", pid]);
        }
        std::thread::sleep(Duration::from_millis(300));
        // Mounts under the run directory (rootfs, network namespaces, volumes), deepest
        // first.
        let prefix = format!("{RUN_DIR}/");
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort();
        for m in mounts.iter().rev() {
            if !run_quiet("umount", &[m]) {
                run_quiet("umount", &["-l", m]);
            }
        }
        run_quiet("ip", &["link", "del", BRIDGE]);
        // Pod cgroups (--cgroups-per-qos=false puts them under /k8s.io).
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                for root in ["k8s.io", "kubepods"] {
                    let dir = h.path().join(root);
                    if dir.is_dir() {
                        remove_cgroup(&dir);
                    }
                }
            }
        }
        if let Ok(results) = std::fs::read_dir("/var/lib/cni/results") {
            for r in results.flatten() {
                if r.file_name().to_string_lossy().starts_with(NETWORK) {
                    let _ = std::fs::remove_file(r.path());
                }
            }
        }
        let created =
            std::fs::read_to_string(self.run.join("hostpaths.created")).unwrap_or_default();
        for path in created.lines().filter(|p| HOST_PATHS.contains(p)) {
            let _ = std::fs::remove_dir_all(path);
        }
        self.restore_sysctls();
        let _ = std::fs::remove_dir_all(&self.run);
    }
}

/// Removes a cgroup and the cgroups under it, deepest first.
fn remove_cgroup(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for c in children.flatten() {
            if c.path().is_dir() {
                remove_cgroup(&c.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for Node {
    fn drop(&mut self) {
        self.teardown();
    }
}
