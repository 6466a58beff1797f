//! The `rkube-certs` binary as the deployment scripts run it: the first run
//! creates the PKI, a second run keeps every file, bad flags exit 1 naming the
//! flag and write nothing.
//!
//! Being an integration test of this package also makes `cargo test` and
//! `cargo nextest run` build the binary, which the test bed, systemd and
//! compose e2e tests run from the target directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("rkube-certs-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn certs(dir: &Path, service_cidr: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkube-certs"))
        .arg("--dir")
        .arg(dir)
        .args(["--server", "https://127.0.0.1:6443", "--service-cidr", service_cidr, "--node", "n1=10.0.0.1"])
        .env_remove("RKUBE_CERT_DIR")
        .env_remove("RKUBE_SERVER")
        .output()
        .expect("rkube-certs runs")
}

/// `(outcome, path)` for every line `rkube-certs` printed.
fn report(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (outcome, path) = line.split_once(' ').expect("lines are `<outcome> <path>`");
            (outcome.to_owned(), path.to_owned())
        })
        .collect()
}

#[test]
fn a_second_run_keeps_every_file_the_first_created() {
    let scratch = Scratch::new("rerun");
    let first = certs(&scratch.0, "10.96.0.0/12");
    assert!(first.status.success(), "first run: {}", String::from_utf8_lossy(&first.stderr));
    let created = report(&first);
    assert!(created.iter().all(|(outcome, _)| outcome == "created"), "{created:?}");
    for wanted in ["ca.crt", "apiserver.crt", "admin.kubeconfig", "n1.kubeconfig", "etcd/ca.crt"] {
        assert!(
            created.iter().any(|(_, path)| path.ends_with(wanted)),
            "{wanted} not among the created files: {created:?}"
        );
    }
    let ca = std::fs::read(scratch.0.join("ca.crt")).expect("ca.crt written");

    let second = certs(&scratch.0, "10.96.0.0/12");
    assert!(second.status.success(), "second run: {}", String::from_utf8_lossy(&second.stderr));
    let kept = report(&second);
    assert_eq!(kept.len(), created.len(), "the same files are looked at: {kept:?}");
    assert!(kept.iter().all(|(outcome, _)| outcome == "kept"), "{kept:?}");
    assert_eq!(std::fs::read(scratch.0.join("ca.crt")).expect("ca.crt still there"), ca, "the CA was rewritten");
}

#[test]
fn a_bad_service_cidr_exits_1_naming_the_flag_and_writes_nothing() {
    let scratch = Scratch::new("bad-cidr");
    let out = certs(&scratch.0, "10.96.0.0/99");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--service-cidr"), "the error names the flag: {stderr}");
    assert!(!scratch.0.exists(), "nothing is written for a refused command line");
}
