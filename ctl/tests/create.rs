//! `rkubectl create` against a real apiserver: manifests (files,
//! directories, stdin, the repository's examples) and objects built from
//! flags (config maps, namespaces).

mod support;

use support::{Cluster, examples_dir};

const MULTI_DOC: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-appvars
data:
  apploglevel: info
  appdatadir: /var/data
---
apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  containers:
  - name: web
    imagee: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: web
    image: nginx
";

#[tokio::test]
async fn a_bad_document_is_reported_and_the_others_are_created() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("multi.yaml", MULTI_DOC);
    let out = c.run(&["create", "-f", &path]).await?;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "configmap/cm-appvars created\npod/web created\n");
    assert_eq!(
        out.stderr.trim_end(),
        format!(
            "Error from server (BadRequest): error when creating \"{path}\": Pod in version \"v1\" cannot be handled \
             as a Pod: strict decoding error: unknown field \"spec.containers[0].imagee\""
        )
    );
    let pods = c.ok(&["get", "pods", "-o", "name"]).await?;
    assert_eq!(pods, "pod/web\n");

    let again = c.run(&["create", "-f", &path]).await?;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains(&format!(
            "Error from server (AlreadyExists): error when creating \"{path}\": configmaps \"cm-appvars\" already exists"
        )),
        "{again:?}"
    );
    assert!(again.stderr.contains("pods \"web\" already exists"), "{again:?}");
    Ok(())
}

#[tokio::test]
async fn unknown_kinds_and_missing_fields_are_client_errors() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file(
        "odd.yaml",
        "apiVersion: v1\nkind: Podd\nmetadata:\n  name: x\n---\nkind: ConfigMap\nmetadata:\n  name: y\n---\n\
         apiVersion: v1\nkind: Deployment\nmetadata:\n  name: d\n",
    );
    let out = c.run(&["create", "-f", &path]).await?;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&format!(
            "error: resource mapping not found for name: \"x\" namespace: \"\" from \"{path}\": no matches for kind \"Podd\" in version \"v1\""
        )),
        "{out:?}"
    );
    assert!(out.stderr.contains("error validating data: apiVersion not set"), "{out:?}");
    assert!(out.stderr.contains("(use apiVersion \"apps/v1\")"), "{out:?}");
    let missing = c.run(&["create", "-f", "/nonexistent/pod.yaml"]).await?;
    assert_eq!(
        (missing.code, missing.stderr.as_str()),
        (1, "error: the path \"/nonexistent/pod.yaml\" does not exist\n")
    );
    Ok(())
}

#[tokio::test]
async fn the_examples_are_accepted() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let dir = examples_dir();
    for example in ["configmap.yaml", "two-container-pod.yaml", "emptydir-logs-pod.yaml"] {
        assert!(dir.join(example).exists(), "examples/{example} is missing");
    }
    let out = c.run(&["create", "-f", &dir.display().to_string()]).await?;
    assert_eq!(out.code, 0, "{out:?}");
    for created in ["configmap/cm-appvars created", "pod/redis-php created", "pod/volume-pod created"] {
        assert!(out.stdout.contains(created), "{out:?}");
    }
    let pods = c.ok(&["get", "pods"]).await?;
    let row: Vec<&str> =
        pods.lines().find(|l| l.starts_with("redis-php ")).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(row.get(1..3), Some(&["0/2", "Pending"][..]), "{pods}");
    let cm = c.ok(&["get", "configmap", "cm-appvars", "-o", "yaml"]).await?;
    assert!(cm.contains("data:\n  appdatadir: /var/data\n  apploglevel: info\n"), "{cm}");
    Ok(())
}

#[tokio::test]
async fn manifests_come_from_directories_and_stdin() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    c.file("dir/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n");
    c.file("dir/b.json", r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}"#);
    let dir = c.file("dir/notes.txt", "ignored");
    let dir = std::path::Path::new(&dir).parent().expect("a directory").display().to_string();
    assert_eq!(c.ok(&["create", "-f", &dir]).await?, "configmap/a created\nconfigmap/b created\n");
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n";
    let out = c.run_with_stdin(&["create", "-f", "-", "-o", "name"], list).await?;
    assert_eq!((out.code, out.stdout.as_str()), (0, "configmap/c\n"));
    Ok(())
}

#[tokio::test]
async fn configmaps_are_built_from_literals_files_and_directories() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let server_xml = c.file("conf/server.xml", "<Server port=\"8005\"/>\n");
    c.file("conf/logging.properties", "handlers=console\n");
    let conf = std::path::Path::new(&server_xml).parent().expect("conf dir").display().to_string();
    let out = c
        .run(&[
            "create",
            "configmap",
            "cm-appconfigfiles",
            "--from-literal=apploglevel=info",
            "--from-literal=appdatadir=/var/data",
            &format!("--from-file=key-serverxml={server_xml}"),
            &format!("--from-file={conf}"),
        ])
        .await?;
    assert_eq!((out.code, out.stdout.as_str()), (0, "configmap/cm-appconfigfiles created\n"), "{out:?}");
    let yaml = c.ok(&["get", "cm", "cm-appconfigfiles", "-o", "yaml"]).await?;
    for line in [
        "  appdatadir: /var/data\n",
        "  apploglevel: info\n",
        "  key-serverxml: |\n    <Server port=\"8005\"/>\n",
        "  logging.properties: |\n    handlers=console\n",
        "  server.xml: |\n",
    ] {
        assert!(yaml.contains(line), "{line:?} in\n{yaml}");
    }
    let table = c.ok(&["get", "configmaps"]).await?;
    assert!(table.starts_with("NAME                DATA   AGE\ncm-appconfigfiles   5      "), "{table}");

    let dup = c.run(&["create", "cm", "dup", "--from-literal=k=1", "--from-literal=k=2"]).await?;
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("cannot add key \"k\", another key by that name already exists"), "{dup:?}");
    let bad = c.run(&["create", "cm", "bad", "--from-literal=novalue"]).await?;
    assert_eq!(bad.stderr, "error: invalid literal source novalue, expected key=value\n");
    let exists = c.run(&["create", "cm", "cm-appconfigfiles", "--from-literal=a=b"]).await?;
    assert_eq!(exists.stderr, "Error from server (AlreadyExists): configmaps \"cm-appconfigfiles\" already exists\n");
    Ok(())
}

#[tokio::test]
async fn namespaces_scope_what_is_created() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    assert_eq!(c.ok(&["create", "namespace", "team-a"]).await?, "namespace/team-a created\n");
    assert_eq!(
        c.ok(&["-n", "team-a", "create", "cm", "settings", "--from-literal=a=b"]).await?,
        "configmap/settings created\n"
    );
    assert_eq!(c.ok(&["get", "cm", "-n", "team-a", "-o", "name"]).await?, "configmap/settings\n");
    let none = c.run(&["get", "cm"]).await?;
    assert_eq!((none.stdout.as_str(), none.stderr.as_str()), ("", "No resources found in default namespace.\n"));

    let path = c.file("ns.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: team-a\n");
    let mismatch = c.run(&["create", "-f", &path, "-n", "default"]).await?;
    assert_eq!(mismatch.code, 1);
    assert!(
        mismatch.stderr.contains(
            "the namespace from the provided object \"team-a\" does not match the namespace \"default\". You must pass '--namespace=team-a' to perform this operation."
        ),
        "{mismatch:?}"
    );
    assert_eq!(c.ok(&["create", "-f", &path]).await?, "configmap/x created\n");
    let missing_ns = c.run(&["-n", "nowhere", "create", "cm", "y", "--from-literal=a=b"]).await?;
    assert_eq!(missing_ns.stderr, "Error from server (NotFound): namespaces \"nowhere\" not found\n");
    Ok(())
}
