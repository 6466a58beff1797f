//! `rkubectl autoscale`, `get hpa` and `describe hpa` against a real
//! apiserver (no controller-manager: the HPA has no status yet, as right
//! after kubectl creates one).

mod support;

use support::Cluster;

const RC: &str = "\
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 1
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: web, image: rkube/toolbox:1.0}
";

#[tokio::test]
async fn autoscale_creates_a_v2_hpa_that_get_and_describe_show() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let path = c.file("rc.yaml", RC);
    c.ok(&["create", "-f", &path]).await?;

    assert_eq!(
        c.ok(&["autoscale", "rc", "web", "--min=1", "--max=3", "--cpu-percent=50"]).await?,
        "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    );
    let hpa: serde_json::Value = serde_json::from_str(&c.ok(&["get", "hpa", "web", "-o", "json"]).await?)?;
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        serde_json::json!({"apiVersion": "v1", "kind": "ReplicationController", "name": "web"})
    );
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);

    let table = c.ok(&["get", "hpa"]).await?;
    let mut lines = table.lines();
    assert_eq!(
        lines.next().map(str::split_whitespace).map(Iterator::collect::<Vec<_>>),
        Some(vec!["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"])
    );
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..7], ["web", "ReplicationController/web", "cpu:", "<unknown>/50%", "1", "3", "0"], "{table}");

    let text = c.ok(&["describe", "hpa", "web"]).await?;
    assert!(text.contains("Reference:"), "{text}");
    assert!(text.contains("resource cpu on pods  (as a percentage of request):  <unknown> / 50%\n"), "{text}");
    assert!(text.contains("Min replicas:") && text.contains("Max replicas:"), "{text}");
    assert!(text.contains("ReplicationController pods:"), "{text}");

    // kubectl's errors: the bounds, and kinds without a scale subresource.
    let bad = c.run(&["autoscale", "rc", "web", "--min=4", "--max=3"]).await?;
    assert_eq!(bad.code, 1);
    assert_eq!(bad.stderr, "error: --max=MAXPODS must be larger or equal to --min=MINPODS, max: 3, min: 4\n");
    let exists = c.run(&["autoscale", "rc", "web", "--max=3"]).await?;
    assert_eq!(exists.code, 1);
    assert!(exists.stderr.contains("AlreadyExists"), "{exists:?}");
    Ok(())
}
