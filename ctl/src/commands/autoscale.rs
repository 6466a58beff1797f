//! `autoscale (TYPE NAME | TYPE/NAME | -f FILE) [--min=MINPODS] --max=MAXPODS
//! [--cpu-percent=CPU] [--name=NAME]`: an autoscaling/v2
//! HorizontalPodAutoscaler for a replication controller, replica set or
//! deployment, as kubectl's `autoscale` builds it: named after the object
//! (or `--name`), its `scaleTargetRef` the object's apiVersion, kind and
//! name, `minReplicas` only when `--min` is given (the server defaults it
//! to 1), and a cpu `Utilization` metric of `--cpu-percent` when given (the
//! server defaults to 80%).
//!
//! With `--dry-run=client` it only prints the HPA (`-o yaml|json|name`).

use super::targets::{self, Query};
use super::{create_derived, print};
use crate::cli::AutoscaleArgs;
use crate::printers::object::{self, Format};
use crate::report::{Reported, usage};
use crate::session::Session;
use rkube_api::ResourceInfo;
use rkube_api::resource::lookup;
use serde_json::{Value, json};

/// The kinds `autoscale` takes (those with a scale subresource).
const SCALABLE: [&str; 3] = ["ReplicationController", "ReplicaSet", "Deployment"];

/// Runs `autoscale`.
pub async fn run(s: &Session, a: &AutoscaleArgs) -> anyhow::Result<()> {
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
    check_bounds(a.min, a.max)?;
    if targets::nothing_named(&Query { resources: &a.resources, filenames: &a.filenames, ..Default::default() }) {
        return Err(usage(
            "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
        ));
    }
    let query = Query { resources: &a.resources, filenames: &a.filenames, command: "autoscale", ..Default::default() };
    let found = targets::resolve(s, &query).await?;
    let mut failed = found.failed;
    let hpa_info = lookup("horizontalpodautoscalers").expect("HPAs are in the table");
    for (info, obj) in &found.objects {
        if !SCALABLE.contains(&info.kind) {
            return Err(usage(format!(
                "cannot autoscale a {}: only ReplicationController, ReplicaSet and Deployment have a scale subresource",
                info.kind
            )));
        }
        let hpa = hpa_for(info, obj, a);
        let Some(made) = create_derived(s, hpa_info, obj, hpa, dry_run).await? else {
            failed = true;
            continue;
        };
        print(&autoscaled(format, hpa_info, &made, dry_run)?)?;
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

/// kubectl's checks of `--min` and `--max` (-1: not given).
fn check_bounds(min: i32, max: i32) -> anyhow::Result<()> {
    if max < 1 {
        return Err(usage(format!("--max=MAXPODS is required and must be at least 1, max: {max}")));
    }
    if max < min {
        return Err(usage(format!("--max=MAXPODS must be larger or equal to --min=MINPODS, max: {max}, min: {min}")));
    }
    Ok(())
}

/// The HPA for `obj`.
fn hpa_for(info: &ResourceInfo, obj: &Value, a: &AutoscaleArgs) -> Value {
    let name = a.name.clone().unwrap_or_else(|| object::name_of(obj).to_string());
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": info.api_version, "kind": info.kind, "name": object::name_of(obj)},
        "maxReplicas": a.max,
    });
    if a.min >= 0 {
        spec["minReplicas"] = a.min.into();
    }
    if a.cpu_percent >= 0 {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": a.cpu_percent}}}]);
    }
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// What `autoscale` prints: `horizontalpodautoscaler.autoscaling/web autoscaled`, or the object.
fn autoscaled(format: Format, info: &ResourceInfo, obj: &Value, dry_run: bool) -> anyhow::Result<String> {
    let reference = object::reference(info, object::name_of(obj));
    Ok(match format {
        Format::Name => format!("{reference}\n"),
        Format::Yaml => object::to_yaml(obj)?,
        Format::Json => object::to_json(obj)?,
        _ if dry_run => format!("{reference} autoscaled (dry run)\n"),
        _ => format!("{reference} autoscaled\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &str) -> AutoscaleArgs {
        let cli = crate::cli::Cli::parse_from(line.split_whitespace());
        match cli.command {
            crate::cli::Command::Autoscale(a) => a,
            other => panic!("not autoscale: {other:?}"),
        }
    }

    #[test]
    fn the_hpa_targets_the_object_with_the_given_bounds() {
        let a = args("rkubectl autoscale rc web --min=1 --max=3 --cpu-percent=50");
        let rc = json!({"metadata": {"name": "web"}});
        let hpa = hpa_for(lookup("rc").unwrap(), &rc, &a);
        assert_eq!(
            hpa,
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                   "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": "ReplicationController", "name": "web"},
                            "minReplicas": 1, "maxReplicas": 3,
                            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 50}}}]}})
        );
        let a = args("rkubectl autoscale deployment/web --max=5 --name=other");
        let hpa = hpa_for(lookup("deployments").unwrap(), &rc, &a);
        assert_eq!(hpa["metadata"]["name"], "other");
        assert_eq!(hpa["spec"]["scaleTargetRef"]["apiVersion"], "apps/v1");
        assert!(hpa["spec"].get("minReplicas").is_none() && hpa["spec"].get("metrics").is_none());
    }

    #[test]
    fn bounds_are_checked_like_kubectl() {
        assert_eq!(
            check_bounds(-1, -1).unwrap_err().to_string(),
            "--max=MAXPODS is required and must be at least 1, max: -1"
        );
        assert_eq!(
            check_bounds(4, 3).unwrap_err().to_string(),
            "--max=MAXPODS must be larger or equal to --min=MINPODS, max: 3, min: 4"
        );
        assert!(check_bounds(-1, 1).is_ok());
    }
}
