//! From a pod's container spec to what the runtime runs, by Kubernetes'
//! rules: `command`/`args` against the image's ENTRYPOINT/CMD
//! ([`command_line`]), `$(VAR)` expansion ([`expand`]), environment from
//! values, ConfigMaps, Secrets and the pod's own fields ([`resolve_env`]),
//! cgroup settings from requests and limits ([`resources`]), host ports
//! ([`host_ports`]) and the spec hash that tells when a running container
//! no longer matches its spec ([`container_hash`]).
//!
//! Everything here is pure: the objects it reads are fetched beforehand
//! into [`EnvSources`].

use crate::runtime::{ContainerMeta, ContainerSpec, ImageDetails, Mount, PortBinding, Resources};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use rkube_api::quantity;
use std::collections::{BTreeMap, BTreeSet};

/// CFS period the kubelet uses for CPU limits, in µs.
pub const CPU_PERIOD: i64 = 100_000;
/// Smallest CPU shares value (the kernel's minimum).
pub const MIN_SHARES: i64 = 2;
/// Largest CPU shares value.
pub const MAX_SHARES: i64 = 262_144;
/// Smallest CFS quota, in µs.
pub const MIN_QUOTA: i64 = 1_000;

/// A container cannot be configured yet: the pod shows it as waiting with
/// reason `CreateContainerConfigError` and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Expands `$(VAR)` references in `input` with `lookup`, exactly as
/// Kubernetes does: `$$` is an escaped `$`, a reference to an undefined
/// variable is left as written, and a `$` that starts no reference stays.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The process to run, as (ENTRYPOINT, CMD): `command` replaces the image's
/// ENTRYPOINT and drops its CMD; `args` replace only the CMD; with neither,
/// the image's own apply.
pub fn command_line(command: &[String], args: &[String], image: &ImageDetails) -> (Vec<String>, Vec<String>) {
    match (command.is_empty(), args.is_empty()) {
        (true, true) => (image.entrypoint.clone(), image.cmd.clone()),
        (true, false) => (image.entrypoint.clone(), args.to_vec()),
        (false, _) => (command.to_vec(), args.to_vec()),
    }
}

/// The ConfigMaps and Secrets a container's environment refers to, fetched
/// beforehand (None: it does not exist), and the Service variables of its
/// pod ([`crate::service_env`]).
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// `<NAME>_SERVICE_HOST` and the rest, in order.
    pub services: Vec<(String, String)>,
}

/// The names of the ConfigMaps and Secrets `c`'s env and envFrom use.
pub fn env_references(c: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(r) = &from.config_map_key_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

/// What the downward API may read besides the pod object.
#[derive(Debug, Clone, Copy)]
pub struct PodContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The pod's IP ("" before the sandbox has one).
    pub pod_ip: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The node's allocatable CPU in millicores (the limit of containers without one).
    pub node_cpu_millis: i64,
    /// The node's allocatable memory in bytes.
    pub node_memory_bytes: i64,
}

/// Whether `name` may be an environment variable (Kubernetes' `IsEnvVarName`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// An ordered environment: setting a name again replaces its value in place.
#[derive(Debug, Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: BTreeMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|&i| self.vars[i].1.clone())
    }
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    if let Some(v) = s.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    s.string_data.as_ref().and_then(|d| d.get(key)).cloned()
}

fn config_map_value(cm: &ConfigMap, key: &str) -> Option<String> {
    if let Some(v) = cm.data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone());
    }
    cm.binary_data.as_ref().and_then(|d| d.get(key)).map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// The container's environment: envFrom first (in order, with prefixes;
/// keys that are not valid names are skipped), then env, each value
/// `$(VAR)`-expanded against what is defined before it and the Service
/// variables, then the Service variables the container does not set
/// itself (as Kubernetes' `makeEnvironmentVariables`). A missing
/// ConfigMap, Secret or key that is not `optional` is a [`ConfigError`]
/// with Kubernetes' message.
pub fn resolve_env(
    c: &Container,
    ctx: &PodContext<'_>,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env = Env::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name).cloned().flatten() {
                Some(cm) => {
                    let binary =
                        cm.binary_data.iter().flatten().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
                    for (k, v) in cm.data.iter().flatten().map(|(k, v)| (k, v.clone())).chain(binary) {
                        let name = format!("{prefix}{k}");
                        if is_env_var_name(&name) {
                            env.set(name, v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name).cloned().flatten() {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        let name = format!("{prefix}{k}");
                        if is_env_var_name(&name) {
                            env.set(name, String::from_utf8_lossy(&v.0).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    let services: BTreeMap<&str, &str> = sources.services.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |env: &Env, name: &str| env.get(name).or_else(|| services.get(name).map(|v| v.to_string()));
    for var in c.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => expand(v, |name| lookup(&env, name)),
            (_, Some(from)) => {
                if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.config_maps.get(&r.name).cloned().flatten() {
                        None if optional => continue,
                        None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
                        Some(cm) => match config_map_value(&cm, &r.key) {
                            Some(v) => v,
                            None if optional => continue,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in ConfigMap {namespace}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional == Some(true);
                    match sources.secrets.get(&r.name).cloned().flatten() {
                        None if optional => continue,
                        None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
                        Some(s) => match secret_value(&s, &r.key) {
                            Some(v) => v,
                            None if optional => continue,
                            None => {
                                return Err(ConfigError(format!(
                                    "couldn't find key {} in Secret {namespace}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                    }
                } else if let Some(f) = &from.field_ref {
                    field_value(&f.field_path, ctx)?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_value(c, r, ctx)?
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    for (name, value) in &sources.services {
        if env.get(name).is_none() {
            env.set(name.clone(), value.clone());
        }
    }
    Ok(env.vars)
}

/// The downward API's `fieldRef`.
fn field_value(path: &str, ctx: &PodContext<'_>) -> Result<String, ConfigError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let in_map = |map: Option<&BTreeMap<String, String>>, prefix: &str| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = in_map(meta.labels.as_ref(), "metadata.labels['") {
        return Ok(v);
    }
    if let Some(v) = in_map(meta.annotations.as_ref(), "metadata.annotations['") {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        other => return Err(ConfigError(format!("unsupported fieldRef fieldPath: \"{other}\""))),
    })
}

fn parse_quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Option<quantity::Quantity> {
    quantity::parse_k8s(q).ok()
}

/// The downward API's `resourceFieldRef`: a request or limit of a container
/// of the pod, divided by `divisor` and rounded up; an unset limit is the
/// node's allocatable amount.
fn resource_value(
    c: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    ctx: &PodContext<'_>,
) -> Result<String, ConfigError> {
    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => c,
        Some(name) => ctx
            .pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .find(|x| x.name == name)
            .ok_or_else(|| ConfigError(format!("resourceFieldRef: container \"{name}\" not found in the pod")))?,
    };
    let (kind, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resourceFieldRef resource: \"{}\"", r.resource)))?;
    let res = target.resources.as_ref();
    let list = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(ConfigError(format!("unsupported resourceFieldRef resource: \"{}\"", r.resource))),
    };
    let amount = list.and_then(|l| l.get(resource)).and_then(parse_quantity);
    let divisor = r.divisor.as_ref().and_then(parse_quantity).filter(|d| !d.is_zero());
    let ceil_div = |a: i128, b: i128| if b <= 0 { a } else { (a + b - 1).div_euclid(b) };
    let value = match resource {
        "cpu" => {
            let millis = match amount {
                Some(q) => q.millis(),
                None if kind == "limits" => i128::from(ctx.node_cpu_millis),
                None => 0,
            };
            ceil_div(millis, divisor.map_or(1000, |d| d.millis()))
        }
        "memory" | "ephemeral-storage" => {
            let bytes = match amount {
                Some(q) => q.value(),
                None if kind == "limits" && resource == "memory" => i128::from(ctx.node_memory_bytes),
                None => 0,
            };
            ceil_div(bytes, divisor.map_or(1, |d| d.value()))
        }
        _ => return Err(ConfigError(format!("unsupported resourceFieldRef resource: \"{}\"", r.resource))),
    };
    Ok(value.to_string())
}

/// CPU shares for a CPU request in millicores: `milli × 1024 / 1000`,
/// at least [`MIN_SHARES`] (also for no request) and at most [`MAX_SHARES`].
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    (milli.saturating_mul(1024) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota for a CPU limit in millicores over `period` µs (at least [`MIN_QUOTA`]).
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    (milli.saturating_mul(period) / 1000).max(MIN_QUOTA)
}

/// cgroup settings from the container's requests and limits: memory limit →
/// memory, CPU limit → CFS quota over a 100 ms period, CPU request → shares.
pub fn resources(c: &Container) -> Resources {
    let r = c.resources.as_ref();
    let get = |list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, name: &str| {
        list.and_then(|l| l.get(name)).and_then(parse_quantity)
    };
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let clamp = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    let cpu_limit = get(limits, "cpu").map(|q| clamp(q.millis())).filter(|m| *m > 0);
    Resources {
        memory_limit: get(limits, "memory").map(|q| clamp(q.value())).filter(|b| *b > 0),
        cpu_shares: milli_cpu_to_shares(get(requests, "cpu").map(|q| clamp(q.millis())).unwrap_or(0)),
        cpu_quota: cpu_limit.map(|m| milli_cpu_to_quota(m, CPU_PERIOD)),
        cpu_period: cpu_limit.map(|_| CPU_PERIOD),
    }
}

/// The host ports of every container in the pod, bound on the sandbox.
pub fn host_ports(pod: &Pod) -> Vec<PortBinding> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
            Some(PortBinding {
                container_port: u16::try_from(p.container_port).ok()?,
                host_port,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// A stable hash of the container's spec (FNV-1a over its JSON): a running
/// container whose hash differs from its spec's is restarted.
pub fn container_hash(c: &Container) -> String {
    let json = serde_json::to_vec(c).expect("a Container always serializes");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Everything a container's runtime spec is made from.
#[derive(Debug)]
pub struct ContainerInputs<'a> {
    /// The container in the pod spec.
    pub container: &'a Container,
    /// Its identity.
    pub meta: ContainerMeta,
    /// What its image runs by default.
    pub image: &'a ImageDetails,
    /// Its resolved environment.
    pub env: Vec<(String, String)>,
    /// Its volume mounts.
    pub mounts: Vec<Mount>,
    /// The pod's sandbox.
    pub sandbox_id: &'a str,
    /// Whether the pod uses the host network.
    pub host_network: bool,
}

/// The runtime spec of a container, with `$(VAR)` references in command
/// and args expanded from its environment.
pub fn container_spec(inputs: ContainerInputs<'_>) -> ContainerSpec {
    let c = inputs.container;
    let vars: BTreeMap<&str, &str> = inputs.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, |name| vars.get(name).map(|v| v.to_string()))).collect()
    };
    let (entrypoint, cmd) = command_line(&expand_all(&c.command), &expand_all(&c.args), inputs.image);
    ContainerSpec {
        meta: inputs.meta,
        image: c.image.clone().unwrap_or_default(),
        entrypoint,
        cmd,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        mounts: inputs.mounts,
        resources: resources(c),
        privileged: c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        sandbox_id: inputs.sandbox_id.to_string(),
        host_network: inputs.host_network,
        env: inputs.env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, ContainerPort, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_replaces_defined_references() {
        assert_eq!(expand("x-$(A)-y", lookup), "x-a-y");
        assert_eq!(expand("$(A)$(A)", lookup), "aa");
        assert_eq!(expand("[$(EMPTY)]", lookup), "[]");
    }

    #[test]
    fn expansion_keeps_undefined_references_and_stray_dollars() {
        assert_eq!(expand("$(B)", lookup), "$(B)");
        assert_eq!(expand("$A $ $", lookup), "$A $ $");
        assert_eq!(expand("$(A", lookup), "$(A");
        assert_eq!(expand("ünï$ç$(A)", lookup), "ünï$ça");
    }

    #[test]
    fn double_dollar_escapes_a_reference() {
        assert_eq!(expand("$$(A)", lookup), "$(A)");
        assert_eq!(expand("$$$(A)", lookup), "$a");
        assert_eq!(expand("$$$$", lookup), "$$");
    }

    fn image() -> ImageDetails {
        ImageDetails { id: "sha256:1".into(), entrypoint: strings(&["/entry"]), cmd: strings(&["--default"]) }
    }

    #[test]
    fn without_command_or_args_the_image_decides() {
        assert_eq!(command_line(&[], &[], &image()), (strings(&["/entry"]), strings(&["--default"])));
    }

    #[test]
    fn command_replaces_entrypoint_and_drops_the_image_cmd() {
        assert_eq!(command_line(&strings(&["sh", "-c"]), &[], &image()), (strings(&["sh", "-c"]), vec![]));
    }

    #[test]
    fn args_replace_only_the_image_cmd() {
        assert_eq!(command_line(&[], &strings(&["-v"]), &image()), (strings(&["/entry"]), strings(&["-v"])));
        assert_eq!(
            command_line(&strings(&["sh"]), &strings(&["-c", "x"]), &image()),
            (strings(&["sh"]), strings(&["-c", "x"]))
        );
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("n1".into()), ..Default::default() }),
            ..Default::default()
        }
    }

    fn ctx(pod: &Pod) -> PodContext<'_> {
        PodContext {
            pod,
            pod_ip: "10.1.1.5",
            host_ip: "192.168.1.2",
            node_cpu_millis: 4000,
            node_memory_bytes: 1 << 30,
        }
    }

    fn value(name: &str, v: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(v.into()), ..Default::default() }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar { name: name.into(), value_from: Some(source), ..Default::default() }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }
    }

    fn cm_key(name: &str, key: &str, optional: bool) -> EnvVarSource {
        EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: name.into(),
                key: key.into(),
                optional: optional.then_some(true),
            }),
            ..Default::default()
        }
    }

    fn sources() -> EnvSources {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([
                ("LEVEL".to_string(), "debug".to_string()),
                ("bad=key".to_string(), "x".to_string()),
            ])),
            ..Default::default()
        };
        let secret = Secret {
            data: Some(BTreeMap::from([("password".to_string(), ByteString(b"s3cret".to_vec()))])),
            ..Default::default()
        };
        EnvSources {
            config_maps: BTreeMap::from([("cfg".to_string(), Some(cm)), ("gone".to_string(), None)]),
            secrets: BTreeMap::from([("db".to_string(), Some(secret))]),
            services: vec![],
        }
    }

    fn container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> Container {
        Container { name: "app".into(), env: Some(env), env_from: Some(env_from), ..Default::default() }
    }

    #[test]
    fn env_values_expand_earlier_variables_only() {
        let c = container(vec![value("B", "$(A)-b"), value("A", "a"), value("C", "$(A)-c")], vec![]);
        let p = pod();
        let env = resolve_env(&c, &ctx(&p), &EnvSources::default()).unwrap();
        assert_eq!(env, vec![("B".into(), "$(A)-b".into()), ("A".into(), "a".into()), ("C".into(), "a-c".into())]);
    }

    #[test]
    fn env_from_applies_prefixes_skips_invalid_names_and_env_overrides_it() {
        let from = EnvFromSource {
            prefix: Some("CFG_".into()),
            config_map_ref: Some(ConfigMapEnvSource { name: "cfg".into(), optional: None }),
            ..Default::default()
        };
        let c = container(vec![value("CFG_LEVEL", "info"), value("X", "$(CFG_LEVEL)")], vec![from]);
        let p = pod();
        let env = resolve_env(&c, &ctx(&p), &sources()).unwrap();
        assert_eq!(env, vec![("CFG_LEVEL".into(), "info".into()), ("X".into(), "info".into())]);
    }

    #[test]
    fn service_variables_come_last_expand_and_lose_to_the_containers_own() {
        let sources = EnvSources {
            services: vec![("WEB_SERVICE_HOST".into(), "10.254.0.20".into()), ("WEB_SERVICE_PORT".into(), "80".into())],
            ..EnvSources::default()
        };
        let c = container(
            vec![value("URL", "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/"), value("WEB_SERVICE_PORT", "8080")],
            vec![],
        );
        let p = pod();
        let env = resolve_env(&c, &ctx(&p), &sources).unwrap();
        assert_eq!(
            env,
            vec![
                ("URL".into(), "http://10.254.0.20:80/".into()),
                ("WEB_SERVICE_PORT".into(), "8080".into()),
                ("WEB_SERVICE_HOST".into(), "10.254.0.20".into()),
            ]
        );
    }

    #[test]
    fn env_reads_config_map_and_secret_keys() {
        let secret = EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: "db".into(), key: "password".into(), optional: None }),
            ..Default::default()
        };
        let c = container(vec![from("LEVEL", cm_key("cfg", "LEVEL", false)), from("PW", secret)], vec![]);
        let p = pod();
        let env = resolve_env(&c, &ctx(&p), &sources()).unwrap();
        assert_eq!(env, vec![("LEVEL".into(), "debug".into()), ("PW".into(), "s3cret".into())]);
    }

    #[test]
    fn missing_config_maps_and_keys_fail_unless_optional() {
        let p = pod();
        let c = container(vec![from("X", cm_key("gone", "k", false))], vec![]);
        assert_eq!(resolve_env(&c, &ctx(&p), &sources()), Err(ConfigError("configmap \"gone\" not found".into())));
        let c = container(vec![from("X", cm_key("cfg", "nope", false))], vec![]);
        assert_eq!(
            resolve_env(&c, &ctx(&p), &sources()),
            Err(ConfigError("couldn't find key nope in ConfigMap prod/cfg".into()))
        );
        let c = container(vec![from("X", cm_key("gone", "k", true)), from("Y", cm_key("cfg", "nope", true))], vec![]);
        assert_eq!(resolve_env(&c, &ctx(&p), &sources()), Ok(vec![]));
    }

    #[test]
    fn field_refs_read_the_pod_and_its_addresses() {
        let c = container(
            ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "status.podIP", "status.hostIP"]
                .iter()
                .enumerate()
                .map(|(i, p)| from(&format!("V{i}"), field(p)))
                .chain([from("L", field("metadata.labels['app']"))])
                .collect(),
            vec![],
        );
        let p = pod();
        let values: Vec<String> = resolve_env(&c, &ctx(&p), &sources()).unwrap().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["web", "prod", "u-1", "n1", "10.1.1.5", "192.168.1.2", "web"]);
        let bad = container(vec![from("X", field("status.phase"))], vec![]);
        assert!(resolve_env(&bad, &ctx(&p), &sources()).is_err());
    }

    fn limits(cpu: Option<&str>, mem: Option<&str>, cpu_request: Option<&str>) -> Option<ResourceRequirements> {
        let list = |pairs: Vec<(&str, Option<&str>)>| {
            let m: BTreeMap<String, Quantity> =
                pairs.into_iter().filter_map(|(k, v)| Some((k.to_string(), Quantity(v?.to_string())))).collect();
            (!m.is_empty()).then_some(m)
        };
        Some(ResourceRequirements {
            limits: list(vec![("cpu", cpu), ("memory", mem)]),
            requests: list(vec![("cpu", cpu_request)]),
            ..Default::default()
        })
    }

    #[test]
    fn resource_field_refs_divide_and_round_up_with_node_fallback() {
        let mut c = container(vec![], vec![]);
        c.resources = limits(Some("250m"), None, None);
        let rf = |resource: &str, divisor: Option<&str>| EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        c.env = Some(vec![
            from("CPU", rf("limits.cpu", None)),
            from("CPU_M", rf("limits.cpu", Some("1m"))),
            from("MEM_MI", rf("limits.memory", Some("1Mi"))),
        ]);
        let p = pod();
        let values: Vec<String> = resolve_env(&c, &ctx(&p), &sources()).unwrap().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, ["1", "250", "1024"]);
    }

    #[test]
    fn cpu_requests_become_shares_with_a_floor() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(10_000_000), MAX_SHARES);
    }

    #[test]
    fn cpu_limits_become_quota_over_a_100ms_period() {
        assert_eq!(milli_cpu_to_quota(500, CPU_PERIOD), 50_000);
        assert_eq!(milli_cpu_to_quota(2000, CPU_PERIOD), 200_000);
        assert_eq!(milli_cpu_to_quota(1, CPU_PERIOD), MIN_QUOTA);
    }

    #[test]
    fn resources_map_limits_and_requests_to_cgroup_settings() {
        let mut c = container(vec![], vec![]);
        c.resources = limits(Some("500m"), Some("64Mi"), Some("250m"));
        assert_eq!(
            resources(&c),
            Resources {
                memory_limit: Some(64 << 20),
                cpu_shares: 256,
                cpu_quota: Some(50_000),
                cpu_period: Some(CPU_PERIOD)
            }
        );
        c.resources = None;
        assert_eq!(resources(&c), Resources { cpu_shares: MIN_SHARES, ..Default::default() });
    }

    #[test]
    fn host_ports_of_all_containers_are_collected() {
        let mut p = pod();
        let port = |cp: i32, hp: Option<i32>| ContainerPort {
            container_port: cp,
            host_port: hp,
            protocol: Some("TCP".into()),
            ..Default::default()
        };
        p.spec.as_mut().unwrap().containers = vec![
            Container {
                name: "a".into(),
                ports: Some(vec![port(80, Some(8080)), port(81, None)]),
                ..Default::default()
            },
            Container { name: "b".into(), ports: Some(vec![port(53, Some(53))]), ..Default::default() },
        ];
        let ports: Vec<(u16, u16, String)> =
            host_ports(&p).into_iter().map(|b| (b.container_port, b.host_port, b.protocol)).collect();
        assert_eq!(ports, vec![(80, 8080, "tcp".into()), (53, 53, "tcp".into())]);
    }

    #[test]
    fn the_hash_changes_with_the_spec_only() {
        let a = Container { name: "a".into(), image: Some("x:1".into()), ..Default::default() };
        let b = Container { image: Some("x:2".into()), ..a.clone() };
        assert_eq!(container_hash(&a), container_hash(&a.clone()));
        assert_ne!(container_hash(&a), container_hash(&b));
    }

    #[test]
    fn command_and_args_expand_from_the_environment() {
        let c = Container {
            name: "app".into(),
            image: Some("x:1".into()),
            command: Some(strings(&["echo", "$(GREETING)"])),
            args: Some(strings(&["$$(GREETING)", "$(MISSING)"])),
            ..Default::default()
        };
        let meta = ContainerMeta {
            pod_uid: "u".into(),
            pod_namespace: "d".into(),
            pod_name: "p".into(),
            name: "app".into(),
            kind: crate::runtime::ContainerKind::App,
            attempt: 0,
            hash: String::new(),
            grace_period: 30,
        };
        let spec = container_spec(ContainerInputs {
            container: &c,
            meta,
            image: &image(),
            env: vec![("GREETING".into(), "hi".into())],
            mounts: vec![],
            sandbox_id: "s",
            host_network: false,
        });
        assert_eq!(spec.entrypoint, strings(&["echo", "hi"]));
        assert_eq!(spec.cmd, strings(&["$(GREETING)", "$(MISSING)"]));
    }
}
