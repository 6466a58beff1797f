//! `expose (TYPE NAME | TYPE/NAME | -f FILE) [--port=PORT] [--target-port=…]
//! [--type=…] [--name=…] [--protocol=…] [--selector=…] [--labels=…]
//! [--session-affinity=…] [--cluster-ip=…] [--external-ip=…]`: a Service for
//! a replication controller, deployment, replica set, pod or service, built
//! as kubectl's `expose` builds it:
//!
//! - the selector from the object (its selector; a pod's labels) unless
//!   `--selector` is given, the labels from the object unless `--labels`;
//! - the ports from `--port`, else from the object (its containers' ports,
//!   a service's ports): one port keeps no name, several are named
//!   `port-1`, `port-2`…; a port the object serves over several protocols
//!   becomes one port per protocol (`port-1-tcp`, `port-1-udp`);
//! - the protocol from `--protocol`, else the object's for that port, else TCP;
//! - the target port from `--target-port`, else the port itself.
//!
//! With `--dry-run=client` it only prints the Service (`-o yaml|json|name`).

use super::targets::{self, Query};
use super::{create_derived, print};
use crate::cli::ExposeArgs;
use crate::printers::object::{self, Format};
use crate::report::{Reported, usage};
use crate::session::Session;
use rkube_api::ResourceInfo;
use rkube_api::resource::lookup;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The kinds `expose` takes.
const EXPOSABLE: [&str; 5] = ["ReplicationController", "Deployment", "ReplicaSet", "Pod", "Service"];
/// The longest Service name (a DNS-1035 label).
const MAX_NAME: usize = 63;

/// Runs `expose`.
pub async fn run(s: &Session, a: &ExposeArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.output.as_deref(), &[Format::Table, Format::Name, Format::Yaml, Format::Json])?;
    let dry_run = match a.dry_run.as_str() {
        "none" => false,
        "client" => true,
        "server" => return Err(usage("--dry-run=server is not supported by rkube; use --dry-run=client")),
        other => {
            return Err(usage(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            )));
        }
    };
    if targets::nothing_named(&Query { resources: &a.resources, filenames: &a.filenames, ..Default::default() }) {
        return Err(usage(
            "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
        ));
    }
    let query = Query { resources: &a.resources, filenames: &a.filenames, command: "expose", ..Default::default() };
    let found = targets::resolve(s, &query).await?;
    let mut failed = found.failed;
    let svc_info = lookup("services").expect("services are in the table");
    for (info, obj) in &found.objects {
        let service = service_for(info, obj, a)?;
        let Some(made) = create_derived(s, svc_info, obj, service, dry_run).await? else {
            failed = true;
            continue;
        };
        print(&exposed(format, svc_info, &made, dry_run)?)?;
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

/// What `expose` prints: `service/web exposed`, or the object.
fn exposed(format: Format, info: &ResourceInfo, obj: &Value, dry_run: bool) -> anyhow::Result<String> {
    let reference = object::reference(info, object::name_of(obj));
    Ok(match format {
        Format::Name => format!("{reference}\n"),
        Format::Yaml => object::to_yaml(obj)?,
        Format::Json => object::to_json(obj)?,
        _ if dry_run => format!("{reference} exposed (dry run)\n"),
        _ => format!("{reference} exposed\n"),
    })
}

/// `k=v,k2=v2` as a map; kubectl's `parseLabels` and its errors.
fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',') {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => return Err(usage(format!("invalid label spec: {pair}"))),
        }
    }
    Ok(out)
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// The pod selector of `obj` (kubectl's `MapBasedSelectorForObject`).
pub fn selector_of(kind: &str, obj: &Value) -> Result<BTreeMap<String, String>, String> {
    match kind {
        "ReplicationController" => Ok(string_map(obj.pointer("/spec/selector"))),
        "Pod" => {
            let labels = string_map(obj.pointer("/metadata/labels"));
            if labels.is_empty() {
                return Err("the pod has no labels and cannot be exposed".into());
            }
            Ok(labels)
        }
        "Service" => match obj.pointer("/spec/selector").filter(|s| !s.is_null()) {
            Some(s) => Ok(string_map(Some(s))),
            None => Err("the service has no pod selector set".into()),
        },
        "Deployment" | "ReplicaSet" => {
            let what = if kind == "Deployment" { "deployment" } else { "replicaset" };
            let labels = string_map(obj.pointer("/spec/selector/matchLabels"));
            if labels.is_empty() {
                return Err(format!("invalid {what}: no selectors, therefore cannot be exposed"));
            }
            let expressions = obj.pointer("/spec/selector/matchExpressions").and_then(Value::as_array);
            if expressions.is_some_and(|e| !e.is_empty()) {
                return Err(format!(
                    "couldn't convert expressions - \"{}\" to map-based selector format",
                    serde_json::to_string(&expressions).unwrap_or_default()
                ));
            }
            Ok(labels)
        }
        other => Err(format!("cannot extract pod selector from {other}")),
    }
}

/// The ports of `obj` as (port, protocol), in order: its containers'
/// (kubectl's `PortsForObject` and `ProtocolsForObject`).
pub fn ports_of(kind: &str, obj: &Value) -> Vec<(i64, String)> {
    let protocol = |p: &Value| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
    let from_pod_spec = |spec: Option<&Value>| -> Vec<(i64, String)> {
        let containers = spec.and_then(|s| s.get("containers")).and_then(Value::as_array).cloned().unwrap_or_default();
        containers
            .iter()
            .flat_map(|c| c.get("ports").and_then(Value::as_array).cloned().unwrap_or_default())
            .filter_map(|p| Some((p.get("containerPort")?.as_i64()?, protocol(&p))))
            .collect()
    };
    match kind {
        "Pod" => from_pod_spec(obj.get("spec")),
        "Service" => obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("port")?.as_i64()?, protocol(p))))
            .collect(),
        _ => from_pod_spec(obj.pointer("/spec/template/spec")),
    }
}

/// The Service `expose` makes for `obj` (kubectl's `createService`).
pub fn service_for(info: &ResourceInfo, obj: &Value, a: &ExposeArgs) -> anyhow::Result<Value> {
    if !EXPOSABLE.contains(&info.kind) {
        return Err(usage(format!("cannot expose a {}", info.kind)));
    }
    let selector = match a.selector.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_labels(s)?,
        None => selector_of(info.kind, obj).map_err(|e| {
            usage(format!(
                "couldn't retrieve selectors via --selector flag or introspection: {e}\nSee 'rkubectl expose -h' for help and examples"
            ))
        })?,
    };
    if selector.is_empty() {
        return Err(usage("selector must be specified"));
    }
    let labels = match a.labels.as_deref().filter(|l| !l.is_empty()) {
        Some(l) => parse_labels(l)?,
        None => string_map(obj.pointer("/metadata/labels")),
    };
    let name = match a.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => object::name_of(obj).chars().take(MAX_NAME).collect(),
    };
    let headless = a.cluster_ip.as_deref() == Some("None");
    let object_ports = ports_of(info.kind, obj);
    // The object's protocols by port, each protocol once, in order.
    let mut protocols: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (port, protocol) in &object_ports {
        let list = protocols.entry(port.to_string()).or_default();
        if !list.contains(protocol) {
            list.push(protocol.clone());
        }
    }
    let port_strings: Vec<String> = match a.port.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => vec![p.to_string()],
        None => {
            if object_ports.is_empty() && !headless {
                return Err(usage(
                    "couldn't find port via --port flag or introspection\nSee 'rkubectl expose -h' for help and examples",
                ));
            }
            object_ports.iter().map(|(p, _)| p.to_string()).collect()
        }
    };
    let several = port_strings.len() > 1;
    let mut ports: Vec<Value> = Vec::new();
    for (i, text) in port_strings.iter().enumerate() {
        let port: i32 = text.parse().map_err(|_| usage(format!("strconv.Atoi: parsing \"{text}\": invalid syntax")))?;
        let name = if several { format!("port-{}", i + 1) } else { String::new() };
        let mut protocol = a.protocol.clone().unwrap_or_default();
        if protocol.is_empty() {
            protocol = "TCP".into();
            match protocols.get(text.as_str()) {
                Some(list) if list.len() == 1 => protocol = list[0].clone(),
                Some(list) if !list.is_empty() => {
                    for p in list {
                        let name = format!("port-{}-{}", i + 1, p.to_lowercase());
                        ports.push(json!({"name": name, "port": port, "protocol": p}));
                    }
                    continue;
                }
                _ => {}
            }
        }
        let mut p = Map::new();
        if !name.is_empty() {
            p.insert("name".into(), name.into());
        }
        p.insert("port".into(), port.into());
        p.insert("protocol".into(), protocol.into());
        ports.push(Value::Object(p));
    }
    let target = a.target_port.as_deref().filter(|t| !t.is_empty()).map(|t| match t.parse::<i64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(t),
    });
    for p in &mut ports {
        p["targetPort"] = target.clone().unwrap_or_else(|| p["port"].clone());
    }
    let mut metadata = Map::new();
    metadata.insert("creationTimestamp".into(), Value::Null);
    if !labels.is_empty() {
        metadata.insert("labels".into(), serde_json::to_value(&labels)?);
    }
    metadata.insert("name".into(), name.into());
    let mut spec = Map::new();
    if !ports.is_empty() {
        spec.insert("ports".into(), ports.into());
    }
    spec.insert("selector".into(), serde_json::to_value(&selector)?);
    if let Some(ip) = a.external_ip.as_deref().filter(|ip| !ip.is_empty()) {
        spec.insert("externalIPs".into(), json!([ip]));
    }
    if let Some(t) = a.type_.as_deref().filter(|t| !t.is_empty()) {
        spec.insert("type".into(), t.into());
        if t == "LoadBalancer"
            && let Some(ip) = a.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty())
        {
            spec.insert("loadBalancerIP".into(), ip.into());
        }
    }
    if let Some(affinity) = a.session_affinity.as_deref().filter(|s| !s.is_empty()) {
        if affinity != "None" && affinity != "ClientIP" {
            return Err(usage(format!("unknown session affinity: {affinity}")));
        }
        spec.insert("sessionAffinity".into(), affinity.into());
    }
    if let Some(ip) = a.cluster_ip.as_deref().filter(|ip| !ip.is_empty()) {
        spec.insert("clusterIP".into(), ip.into());
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ExposeArgs {
        let cli = crate::cli::Cli::parse_from(["rkubectl", "expose", "rc", "x"].iter().chain(extra));
        match cli.command {
            crate::cli::Command::Expose(a) => a,
            other => panic!("not expose: {other:?}"),
        }
    }

    fn rc() -> Value {
        json!({"kind": "ReplicationController", "metadata": {"name": "frontend", "labels": {"app": "guestbook"}},
            "spec": {"selector": {"app": "guestbook", "tier": "frontend"}, "template": {"spec": {"containers": [
                {"name": "php", "image": "php", "ports": [{"containerPort": 80}]}]}}}})
    }

    fn expose(kind: &str, obj: &Value, extra: &[&str]) -> anyhow::Result<Value> {
        service_for(lookup(kind).unwrap(), obj, &args(extra))
    }

    #[test]
    fn a_replication_controller_is_exposed_on_its_selector_and_container_port() {
        let svc = expose("rc", &rc(), &[]).unwrap();
        assert_eq!(
            object::to_yaml(&svc).unwrap(),
            "apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: guestbook
  name: frontend
spec:
  ports:
  - port: 80
    protocol: TCP
    targetPort: 80
  selector:
    app: guestbook
    tier: frontend
status:
  loadBalancer: {}
"
        );
    }

    #[test]
    fn flags_set_port_target_type_name_labels_affinity_and_cluster_ip() {
        let svc = expose(
            "rc",
            &rc(),
            &[
                "--port=8000",
                "--target-port=http",
                "--type=NodePort",
                "--name=web",
                "--protocol=UDP",
                "--labels=team=a",
                "--selector=app=other",
                "--session-affinity=ClientIP",
                "--cluster-ip=10.254.0.50",
            ],
        )
        .unwrap();
        assert_eq!(
            svc["spec"],
            json!({"ports": [{"port": 8000, "protocol": "UDP", "targetPort": "http"}], "selector": {"app": "other"},
                "type": "NodePort", "sessionAffinity": "ClientIP", "clusterIP": "10.254.0.50"})
        );
        assert_eq!(svc["metadata"]["name"], "web");
        assert_eq!(svc["metadata"]["labels"], json!({"team": "a"}));
        assert!(expose("rc", &rc(), &["--session-affinity=Sticky"]).is_err());
    }

    #[test]
    fn several_ports_are_numbered_and_multi_protocol_ports_split() {
        let pod = json!({"metadata": {"name": "dns", "labels": {"app": "dns"}}, "spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}]},
            {"name": "b", "ports": [{"containerPort": 9153}]}]}});
        let svc = expose("pod", &pod, &[]).unwrap();
        let ports: Vec<(String, i64, String)> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_string(), p["port"].as_i64().unwrap(), p["protocol"].to_string()))
            .collect();
        assert_eq!(ports[0], ("port-1-udp".into(), 53, "\"UDP\"".into()));
        assert_eq!(ports[1], ("port-1-tcp".into(), 53, "\"TCP\"".into()));
        assert_eq!(ports.last().unwrap(), &("port-3".into(), 9153, "\"TCP\"".into()));
    }

    #[test]
    fn objects_without_ports_or_selectors_cannot_be_exposed() {
        let bare =
            json!({"metadata": {"name": "bare", "labels": {"app": "x"}}, "spec": {"containers": [{"name": "a"}]}});
        let err = expose("pod", &bare, &[]).unwrap_err().to_string();
        assert!(err.starts_with("couldn't find port via --port flag or introspection"), "{err}");
        assert!(expose("pod", &bare, &["--cluster-ip=None"]).is_ok(), "a headless service needs no port");
        let unlabelled = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        let err = expose("pod", &unlabelled, &["--port=80"]).unwrap_err().to_string();
        assert!(err.contains("the pod has no labels and cannot be exposed"), "{err}");
        let node = json!({"metadata": {"name": "n1"}});
        assert_eq!(expose("node", &node, &[]).unwrap_err().to_string(), "cannot expose a Node");
    }

    #[test]
    fn deployments_use_match_labels_and_services_their_ports() {
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "n", "ports": [{"containerPort": 8080}]}]}}}});
        let svc = expose("deploy", &deploy, &["--port=80", "--target-port=8080"]).unwrap();
        assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(svc["spec"]["ports"], json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}]));
        assert!(svc["metadata"].get("labels").is_none());
        let existing = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}});
        let svc = expose("svc", &existing, &["--name=web-2"]).unwrap();
        let names: Vec<&str> =
            svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["port-1", "port-2"]);
    }
}
