//! `rkubectl get` against a real apiserver: tables, output formats,
//! selectors, errors and `-w`.

mod support;

use support::{Cluster, output_of, rkubectl};

const OBJECTS: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  containers:
  - name: web
    image: nginx
---
apiVersion: v1
kind: Pod
metadata:
  name: db
  labels: {app: db}
spec:
  containers:
  - name: db
    image: postgres
  - name: backup
    image: toolbox
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-appvars
data:
  apploglevel: info
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

async fn cluster_with_objects() -> anyhow::Result<Cluster> {
    let c = Cluster::start().await?;
    let path = c.file("objects.yaml", OBJECTS);
    c.ok(&["create", "-f", &path]).await?;
    Ok(c)
}

#[tokio::test]
async fn tables_have_kubectl_columns() -> anyhow::Result<()> {
    let c = cluster_with_objects().await?;
    let pods = c.ok(&["get", "pods"]).await?;
    let lines: Vec<&str> = pods.lines().collect();
    assert_eq!(lines[0], "NAME   READY   STATUS    RESTARTS   AGE");
    assert!(lines[1].starts_with("db     0/2     Pending   0          "), "{pods}");
    assert!(lines[2].starts_with("web    0/1     Pending   0          "), "{pods}");

    let wide = c.ok(&["get", "po", "web", "-o", "wide"]).await?;
    assert!(
        wide.starts_with(
            "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES\n"
        ),
        "{wide}"
    );
    assert!(wide.contains("<none>   <none>   <none>           <none>"), "{wide}");

    // The apiserver's own `kubernetes` Service is there too: ask for `web` alone.
    let svc = c.ok(&["get", "svc", "web"]).await?;
    let svc_lines: Vec<&str> = svc.lines().collect();
    assert!(svc_lines[0].starts_with("NAME   TYPE        CLUSTER-IP   "), "{svc}");
    assert!(svc_lines[0].ends_with("EXTERNAL-IP   PORT(S)   AGE"), "{svc}");
    assert!(svc_lines[1].starts_with("web    ClusterIP   10.254."), "{svc}");
    assert!(svc_lines[1].contains("   <none>        80/TCP    "), "{svc}");

    let both = c.ok(&["get", "pods,cm"]).await?;
    assert!(both.contains("pod/web"), "{both}");
    assert!(both.contains("\n\nNAME                   DATA   AGE\nconfigmap/cm-appvars   1      "), "{both}");

    let labels = c.ok(&["get", "pods", "--show-labels"]).await?;
    assert!(labels.lines().next().expect("header").ends_with("AGE   LABELS"), "{labels}");
    assert!(labels.contains("app=web,tier=front"), "{labels}");

    let all = c.ok(&["get", "pods", "-A"]).await?;
    assert!(all.starts_with("NAMESPACE   NAME   READY"), "{all}");
    assert!(all.contains("\ndefault     web    0/1"), "{all}");

    let namespaces = c.ok(&["get", "ns"]).await?;
    assert!(namespaces.starts_with("NAME              STATUS   AGE\ndefault           Active   "), "{namespaces}");
    Ok(())
}

#[tokio::test]
async fn yaml_json_and_name_output() -> anyhow::Result<()> {
    let c = cluster_with_objects().await?;
    let yaml = c.ok(&["get", "configmap", "cm-appvars", "-o", "yaml"]).await?;
    assert!(yaml.starts_with("apiVersion: v1\ndata:\n  apploglevel: info\nkind: ConfigMap\nmetadata:\n"), "{yaml}");
    for field in [
        "  creationTimestamp: \"",
        "  name: cm-appvars\n",
        "  namespace: default\n",
        "  resourceVersion: \"",
        "  uid: ",
    ] {
        assert!(yaml.contains(field), "{field:?} in\n{yaml}");
    }

    let json: serde_json::Value = serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json"]).await?)?;
    assert_eq!(json["kind"], "Pod");
    assert_eq!(json["spec"]["containers"][0]["image"], "nginx");
    assert!(json["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));

    let list: serde_json::Value = serde_json::from_str(&c.ok(&["get", "pods", "-o", "json"]).await?)?;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));

    assert_eq!(c.ok(&["get", "pods", "-o", "name"]).await?, "pod/db\npod/web\n");
    assert_eq!(c.ok(&["get", "pod/web", "service/web", "-o", "name"]).await?, "pod/web\nservice/web\n");
    let bad = c.run(&["get", "pods", "-o", "jsonpath"]).await?;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.starts_with("error: unable to match a printer suitable for the output format \"jsonpath\""));
    Ok(())
}

#[tokio::test]
async fn selectors_pick_objects() -> anyhow::Result<()> {
    let c = cluster_with_objects().await?;
    assert_eq!(c.ok(&["get", "pods", "-l", "app=web", "-o", "name"]).await?, "pod/web\n");
    assert_eq!(c.ok(&["get", "pods", "-l", "app in (db,cache)", "-o", "name"]).await?, "pod/db\n");
    assert_eq!(c.ok(&["get", "pods", "-l", "!tier", "-o", "name"]).await?, "pod/db\n");
    assert_eq!(c.ok(&["get", "pods", "--field-selector", "metadata.name=web", "-o", "name"]).await?, "pod/web\n");
    let columns = c.ok(&["get", "pods", "-L", "tier"]).await?;
    assert!(columns.starts_with("NAME   READY   STATUS    RESTARTS   AGE   TIER\n"), "{columns}");
    let none = c.run(&["get", "pods", "-l", "app=nothing"]).await?;
    assert_eq!((none.code, none.stderr.as_str()), (0, "No resources found in default namespace.\n"));
    Ok(())
}

#[tokio::test]
async fn errors_read_like_kubectl() -> anyhow::Result<()> {
    let c = cluster_with_objects().await?;
    let missing = c.run(&["get", "pods", "web", "nope"]).await?;
    assert_eq!(missing.code, 1);
    assert!(missing.stdout.contains("web "), "{missing:?}");
    assert_eq!(missing.stderr, "Error from server (NotFound): pods \"nope\" not found\n");
    let as_yaml = c.run(&["get", "pods", "nope", "-o", "yaml"]).await?;
    assert_eq!((as_yaml.code, as_yaml.stdout.as_str()), (1, ""));
    let ignored = c.run(&["get", "pods", "nope", "--ignore-not-found"]).await?;
    assert_eq!((ignored.code, ignored.stderr.as_str()), (0, ""));

    let unknown = c.run(&["get", "foo"]).await?;
    assert_eq!(
        (unknown.code, unknown.stderr.as_str()),
        (1, "error: the server doesn't have a resource type \"foo\"\n")
    );
    let nothing = c.run(&["get"]).await?;
    assert_eq!(nothing.code, 1);
    assert!(nothing.stderr.starts_with("error: You must specify the type of resource to get."), "{nothing:?}");
    let bad_selector = c.run(&["get", "pods", "-l", "app in (web"]).await?;
    assert_eq!(bad_selector.code, 1);
    assert!(bad_selector.stderr.starts_with("Error from server (BadRequest): "), "{bad_selector:?}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_named() -> anyhow::Result<()> {
    let port = rkube_testkit::free_port();
    let mut cmd = rkubectl(&format!("127.0.0.1:{port}"));
    cmd.args(["get", "pods"]);
    let out = output_of(cmd, None).await?;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        format!(
            "The connection to the server 127.0.0.1:{port} was refused - did you specify the right host or port?\n"
        )
    );
    Ok(())
}

#[tokio::test]
async fn watch_prints_the_table_then_each_change() -> anyhow::Result<()> {
    let c = cluster_with_objects().await?;
    let watch = c.spawn(&["get", "configmaps", "-w"])?;
    watch.wait_for_output("cm-appvars").await?;
    assert!(watch.stdout().starts_with("NAME         DATA   AGE\ncm-appvars   1      "), "{}", watch.stdout());
    c.ok(&["create", "configmap", "later", "--from-literal=a=1", "--from-literal=b=2"]).await?;
    watch.wait_for_output("\nlater        2      ").await?;
    c.ok(&["delete", "configmap", "cm-appvars"]).await?;
    rkube_testkit::wait_for(std::time::Duration::from_secs(20), || async {
        watch.stdout().matches("cm-appvars").count() == 2
    })
    .await?;
    watch.stop().await;

    let objects = c.spawn(&["get", "cm", "later", "-w", "-o", "yaml"])?;
    objects.wait_for_output("name: later").await?;
    c.ok(&["label", "cm", "later", "seen=yes"]).await?;
    objects.wait_for_output("---\n").await?;
    objects.wait_for_output("seen: \"yes\"").await?;
    objects.stop().await;
    Ok(())
}

#[tokio::test]
async fn workload_tables_have_kubectl_columns() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let examples = support::examples_dir();
    for file in ["frontend-rc.yaml", "deployment.yaml", "daemonset.yaml", "job.yaml"] {
        c.ok(&["create", "-f", &examples.join(file).display().to_string()]).await?;
    }
    let header =
        |table: String| table.lines().next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(header(c.ok(&["get", "rc"]).await?), "NAME DESIRED CURRENT READY AGE");
    assert_eq!(
        header(c.ok(&["get", "rc", "-o", "wide"]).await?),
        "NAME DESIRED CURRENT READY AGE CONTAINERS IMAGES SELECTOR"
    );
    assert_eq!(header(c.ok(&["get", "deploy"]).await?), "NAME READY UP-TO-DATE AVAILABLE AGE");
    assert_eq!(
        header(c.ok(&["get", "ds"]).await?),
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert_eq!(header(c.ok(&["get", "job"]).await?), "NAME STATUS COMPLETIONS DURATION AGE");
    let rc = c.ok(&["get", "rc", "frontend", "-o", "wide", "--no-headers"]).await?;
    let cells: Vec<&str> = rc.split_whitespace().collect();
    assert_eq!(cells[..4], ["frontend", "3", "0", "0"]);
    assert_eq!(cells[5..], ["frontend", "rkube/toolbox:1.0", "name=frontend,version=v1"]);
    let deploy = c.ok(&["get", "deploy", "web", "--no-headers"]).await?;
    assert_eq!(deploy.split_whitespace().take(4).collect::<Vec<_>>(), ["web", "0/3", "0", "0"]);
    let job = c.ok(&["get", "job", "count-down", "--no-headers"]).await?;
    assert_eq!(job.split_whitespace().take(3).collect::<Vec<_>>(), ["count-down", "Running", "0/4"]);
    Ok(())
}
