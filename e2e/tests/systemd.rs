//! The systemd units of `deploy/systemd`: `systemd-analyze verify` accepts
//! them, and each unit's `ExecStart`, with the environment of its
//! `EnvironmentFile`s (the samples of `deploy/systemd/env`, as install.sh
//! puts them in /etc/rkube), starts a daemon that tells the service manager
//! `READY=1` when it is ready and `STOPPING=1` on SIGTERM, as `Type=notify`
//! expects. There is no systemd as PID 1 here: the test plays its part, a
//! datagram socket named by `$NOTIFY_SOCKET`.
//!
//! The daemons run secure, as the samples configure them: `install.sh
//! master` (under a temporary `DESTDIR`) makes the PKI with rkube-certs,
//! `install.sh node --pki` takes the node's credentials from it, and the
//! samples' `/etc/rkube/pki/...` paths point into those roots.
//!
//! Only what must differ on a shared test host is overridden: ports (so
//! `RKUBE_SERVER`, which keeps each kubeconfig's credentials), the etcd
//! address, directories, the proxy's table, and the kubelet's runtime
//! (`fake`: registering the Node is what READY=1 waits for, and it needs no
//! Docker).

use anyhow::{Context as _, bail, ensure};
use rkube_testkit::{Etcd, free_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::UnixDatagram;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ is in the workspace").to_path_buf()
}

/// What systemd would run for a unit.
#[derive(Debug)]
struct Unit {
    /// The binary's file name (ExecStart is /usr/local/bin/<binary>).
    binary: String,
    /// The variables of its EnvironmentFiles, in order (later ones win).
    env: Vec<(String, String)>,
}

/// Parses `deploy/systemd/<name>.service`: its ExecStart, and its
/// EnvironmentFiles read from the samples in `deploy/systemd/env`.
fn unit(name: &str) -> anyhow::Result<Unit> {
    let path = repo().join("deploy/systemd").join(format!("{name}.service"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (mut binary, mut env) = (None, Vec::new());
    for line in text.lines().map(str::trim) {
        if let Some(file) = line.strip_prefix("EnvironmentFile=") {
            let file = file.trim_start_matches('-');
            let sample =
                file.strip_prefix("/etc/rkube/").with_context(|| format!("{name}: {file} is not in /etc/rkube"))?;
            env.extend(env_file(&repo().join("deploy/systemd/env").join(sample))?);
        } else if let Some(cmd) = line.strip_prefix("ExecStart=") {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            ensure!(words.len() == 1, "{name}: flags belong in the environment files, not in ExecStart={cmd}");
            let bin = words[0].strip_prefix("/usr/local/bin/").with_context(|| format!("{name}: {cmd}"))?;
            binary = Some(bin.to_string());
        }
    }
    Ok(Unit { binary: binary.with_context(|| format!("{name} has no ExecStart"))?, env })
}

/// `KEY=VALUE` lines of an environment file (systemd.exec(5)); `#` comments.
fn env_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut vars = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').with_context(|| format!("{}: not KEY=VALUE: {line}", path.display()))?;
        vars.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(vars)
}

/// A unit's daemon with the test as its service manager.
struct Daemon {
    name: String,
    child: Child,
    notify: UnixDatagram,
    log: PathBuf,
}

impl Daemon {
    /// Starts `name`'s ExecStart with its environment, its `/etc/rkube/`
    /// paths moved under `root` (an install.sh DESTDIR), then `overrides`.
    fn start(name: &str, dir: &Path, root: &Path, overrides: &[(&str, String)]) -> anyhow::Result<Daemon> {
        let mut unit = unit(name)?;
        for (_, value) in &mut unit.env {
            if value.starts_with("/etc/rkube/") {
                *value = format!("{}{value}", root.display());
            }
        }
        let socket = dir.join(format!("{name}.notify"));
        let notify = UnixDatagram::bind(&socket)?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let bin = rkube_e2e::bin_dir().join(&unit.binary);
        ensure!(bin.exists(), "{} is not built (cargo build --workspace --bins)", bin.display());
        let child = Command::new(&bin)
            .envs(unit.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(overrides.iter().map(|(k, v)| (*k, v.as_str())))
            .env("NOTIFY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Daemon { name: name.to_string(), child, notify, log })
    }

    /// Waits for the datagram `msg` (other messages are skipped).
    async fn expect(&mut self, msg: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            let n = match tokio::time::timeout_at(deadline, self.notify.recv(&mut buf)).await {
                Ok(n) => n?,
                Err(_) => bail!("{} sent no {msg} within {timeout:?}\n{}", self.name, self.log_text()),
            };
            if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == msg) {
                return Ok(());
            }
        }
    }

    /// Sends SIGTERM, as `systemctl stop`.
    fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        Ok(())
    }

    /// Waits for the process to exit; true when it exited with status 0.
    async fn exited_cleanly(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if std::time::Instant::now() >= deadline {
                bail!("{} did not exit within {timeout:?} of SIGTERM\n{}", self.name, self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        format!("--- {} log:\n{}", self.name, std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn systemd_analyze_verify_accepts_every_unit() {
    let bin_dir = rkube_e2e::bin_dir();
    let out = Command::new(repo().join("deploy/systemd/verify.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("running deploy/systemd/verify.sh");
    assert!(
        out.status.success(),
        "verify.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let units = std::fs::read_dir(repo().join("deploy/systemd"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "service"))
        .count();
    assert_eq!(units, 5, "one unit per daemon");
}

#[test]
fn every_unit_parses_to_its_binary_and_both_env_files() {
    for (name, binary, own, secure) in [
        ("rkube-apiserver", "rkube-apiserver", "RKUBE_ETCD_SERVERS", "RKUBE_TLS_CERT_FILE"),
        ("rkube-controller-manager", "rkube-controller-manager", "RKUBE_PV_HOSTPATH_DELETE_ROOT", "RKUBECONFIG"),
        ("rkube-scheduler", "rkube-scheduler", "RKUBE_HEALTHZ_BIND_ADDRESS", "RKUBECONFIG"),
        ("rkubelet", "rkubelet", "RKUBE_CONTAINER_RUNTIME", "RKUBE_TLS_CERT_FILE"),
        ("rkube-proxy", "rkube-proxy", "RKUBE_PROXY_TABLE", "RKUBECONFIG"),
    ] {
        let unit = unit(name).unwrap();
        assert_eq!(unit.binary, binary);
        let has = |k: &str| unit.env.iter().any(|(key, _)| key == k);
        assert!(has("RKUBE_LOG_FORMAT") && has(own), "{name}: {:?}", unit.env);
        // Secure by default: credentials from /etc/rkube/pki, nothing else.
        assert!(has(secure), "{name} has no {secure}: {:?}", unit.env);
        for (key, value) in &unit.env {
            if key.ends_with("_FILE") || key.ends_with("CONFIG") || key.starts_with("RKUBE_KUBELET_C") {
                assert!(value.starts_with("/etc/rkube/pki/"), "{name}: {key}={value} is not in /etc/rkube/pki");
            }
        }
    }
}

/// Runs `deploy/install.sh ARGS` with `DESTDIR=root`; fails with its output.
fn install(root: &Path, args: &[&str]) {
    let out = Command::new(repo().join("deploy/install.sh"))
        .env("DESTDIR", root)
        .arg("--bin-dir")
        .arg(rkube_e2e::bin_dir())
        .args(args)
        .output()
        .expect("running deploy/install.sh");
    assert!(
        out.status.success(),
        "install.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `curl` of `url` trusting `ca`, with no client certificate: the status code.
fn anonymous_status(ca: &Path, url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .arg(url)
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_notifies_ready_when_ready_and_stopping_on_sigterm() {
    let etcd = Etcd::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("rkube-e2e-systemd-{:06x}", fastrand::u32(..0xff_ffff)));
    std::fs::create_dir_all(&dir).unwrap();
    let api_port = free_port();
    let server = format!("https://127.0.0.1:{api_port}");
    let ready_timeout = Duration::from_secs(60);
    let node = format!("sd-{:06x}", fastrand::u32(..0xff_ffff));

    // The master's PKI, and the node's credentials taken from it, as
    // docs/deploy.md does it on three machines.
    let (master, node_root) = (dir.join("master"), dir.join("node"));
    install(&master, &["master", "--master-address", "127.0.0.1", "--node", &format!("{node}=127.0.0.1")]);
    let master_pki = master.join("etc/rkube/pki");
    install(&node_root, &["node", "--pki", &master_pki.display().to_string(), "--node-name", &node]);
    let ca = master_pki.join("ca.crt");

    let mut apiserver = Daemon::start(
        "rkube-apiserver",
        &dir,
        &master,
        &[
            ("RKUBE_ETCD_SERVERS", etcd.url()),
            ("RKUBE_BIND_ADDRESS", "127.0.0.1".into()),
            ("RKUBE_PORT", api_port.to_string()),
        ],
    )
    .unwrap();
    apiserver.expect("READY=1", ready_timeout).await.unwrap();
    // READY=1 means what /readyz means; the port is TLS, and anonymous
    // clients get nothing else.
    assert_eq!(anonymous_status(&ca, &format!("{server}/readyz")), "200", "/readyz after READY=1");
    assert_eq!(anonymous_status(&ca, &format!("{server}/api/v1/nodes")), "401", "an anonymous list of nodes");

    let health = || ("RKUBE_HEALTHZ_BIND_ADDRESS", format!("127.0.0.1:{}", free_port()));
    let pv_root = dir.join("hostpath-pv");
    std::fs::create_dir_all(&pv_root).unwrap();
    let table = format!("rkube-sd-{:06x}", fastrand::u32(..0xff_ffff));
    let mut daemons = vec![
        Daemon::start(
            "rkube-controller-manager",
            &dir,
            &master,
            &[
                ("RKUBE_SERVER", server.clone()),
                health(),
                ("RKUBE_PV_HOSTPATH_DELETE_ROOT", pv_root.display().to_string()),
            ],
        )
        .unwrap(),
        Daemon::start("rkube-scheduler", &dir, &master, &[("RKUBE_SERVER", server.clone()), health()]).unwrap(),
        Daemon::start(
            "rkubelet",
            &dir,
            &node_root,
            &[
                ("RKUBE_SERVER", server.clone()),
                health(),
                ("RKUBE_CONTAINER_RUNTIME", "fake".into()),
                ("RKUBE_HOSTNAME_OVERRIDE", node.clone()),
                ("RKUBE_NODE_IP", "127.0.0.1".into()),
                ("RKUBE_KUBELET_PORT", "0".into()),
                ("RKUBE_ROOT_DIR", dir.join("rkubelet").display().to_string()),
            ],
        )
        .unwrap(),
        Daemon::start(
            "rkube-proxy",
            &dir,
            &node_root,
            &[
                ("RKUBE_SERVER", server.clone()),
                health(),
                ("RKUBE_PROXY_TABLE", table.clone()),
                ("RKUBE_HOSTNAME_OVERRIDE", node.clone()),
            ],
        )
        .unwrap(),
    ];
    for d in &mut daemons {
        d.expect("READY=1", ready_timeout).await.unwrap();
    }
    // The kubelet says READY=1 once its Node exists; the admin sees it.
    let admin = rkube_client::ClientConfig::resolve(Some(&server), Some(&master_pki.join("admin.kubeconfig"))).unwrap();
    let client = rkube_client::Client::from_config(&admin).unwrap();
    let nodes = rkube_client::Api::<k8s_openapi::api::core::v1::Node>::all(client);
    nodes.get(&node).await.expect("rkubelet registered its Node before READY=1");

    daemons.push(apiserver);
    for d in daemons.iter_mut().rev() {
        d.terminate().unwrap();
        d.expect("STOPPING=1", Duration::from_secs(10)).await.unwrap();
        let clean = d.exited_cleanly(Duration::from_secs(30)).await.unwrap();
        assert!(clean, "{} exited with an error after SIGTERM\n{}", d.name, d.log_text());
    }

    // --cleanup binds the health port too: not the default one, which a
    // cluster on this host may hold.
    let cleanup = Command::new(rkube_e2e::bin_dir().join("rkube-proxy"))
        .args(["--cleanup", "--table", &table, "--healthz-bind-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "rkube-proxy --cleanup: {}", String::from_utf8_lossy(&cleanup.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
