//! Resource amounts: what a pod requests and what a node can give, as plain
//! integers (milli-CPUs, bytes, counts) so the filters only compare numbers.
//!
//! A pod's request follows Kubernetes' `PodRequests`: the sum over its
//! containers, raised to the largest init container (sidecars, init
//! containers with `restartPolicy: Always`, keep counting after they start),
//! plus the pod overhead. For scoring, a container that requests no CPU or
//! memory counts as 100m / 200Mi ([`NonZero`]), so best-effort pods still
//! spread out.

use crate::view::{ContainerView, PodSpecView};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// CPU a container without a CPU request counts for in scores (milli-CPUs).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts for in scores (bytes).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of every resource the scheduler accounts for, except the pod count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in milli-CPUs.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Extended resources (`example.com/gpu`), hugepages and attachable
    /// volumes, by name, sorted; usually empty.
    pub scalar: Vec<(String, i64)>,
}

/// Whether `name` is a resource counted in [`Resources::scalar`].
fn is_scalar(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

fn to_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// The amount of a quantity in the unit the scheduler counts it in (0 when
/// it does not parse; the apiserver validated it already).
fn amount(name: &str, q: &Quantity) -> i64 {
    match rkube_api::quantity::parse_k8s(q) {
        Ok(q) if name == "cpu" => to_i64(q.millis()),
        Ok(q) => to_i64(q.value()),
        Err(_) => 0,
    }
}

impl Resources {
    /// The amounts of a resource list (requests, allocatable, overhead).
    pub fn from_list<'a>(list: impl IntoIterator<Item = (&'a String, &'a Quantity)>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, amount(name, q));
        }
        r
    }

    /// Sets the amount of resource `name`; names the scheduler does not
    /// account for (like `pods`) are ignored.
    pub fn set(&mut self, name: &str, value: i64) {
        match name {
            "cpu" => self.milli_cpu = value,
            "memory" => self.memory = value,
            "ephemeral-storage" => self.ephemeral_storage = value,
            _ if is_scalar(name) => match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => self.scalar[i].1 = value,
                Err(i) => self.scalar.insert(i, (name.to_string(), value)),
            },
            _ => {}
        }
    }

    /// The amount of scalar resource `name` (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)).map_or(0, |i| self.scalar[i].1)
    }

    fn combine(&mut self, other: &Resources, f: impl Fn(i64, i64) -> i64) {
        self.milli_cpu = f(self.milli_cpu, other.milli_cpu);
        self.memory = f(self.memory, other.memory);
        self.ephemeral_storage = f(self.ephemeral_storage, other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let mine = self.scalar(name);
            self.set(name, f(mine, *v));
        }
    }

    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: &Resources) {
        self.combine(other, i64::saturating_add);
    }

    /// Subtracts `other` from these amounts.
    pub fn sub(&mut self, other: &Resources) {
        self.combine(other, i64::saturating_sub);
    }

    /// Raises every amount to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.combine(other, i64::max);
    }
}

/// CPU and memory as counted for scoring: containers that request none count
/// for [`DEFAULT_MILLI_CPU_REQUEST`] and [`DEFAULT_MEMORY_REQUEST`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonZero {
    /// CPU in milli-CPUs.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
}

impl NonZero {
    /// Adds `other` to these amounts.
    pub fn add(&mut self, other: NonZero) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    /// Subtracts `other` from these amounts.
    pub fn sub(&mut self, other: NonZero) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
    }
}

fn container_requests(c: &ContainerView) -> Resources {
    Resources::from_list(c.resources.requests.iter())
}

fn container_non_zero(c: &ContainerView) -> Resources {
    let has = |name: &str| c.resources.requests.get(name).is_some();
    let mut r = container_requests(c);
    if !has("cpu") {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if !has("memory") {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

/// Kubernetes' aggregation: containers summed; each init container needs its
/// own amount plus the sidecars started before it; the pod needs the larger
/// of the two, plus its overhead.
fn aggregate(spec: &PodSpecView, per_container: impl Fn(&ContainerView) -> Resources) -> Resources {
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&per_container(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let own = per_container(c);
        let mut running = sidecars.clone();
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&own);
            sidecars.add(&own);
            running = sidecars.clone();
        } else {
            running.add(&own);
        }
        init_peak.max_with(&running);
    }
    total.max_with(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(overhead));
    }
    total
}

/// What the pod requests, for the fit filter and the node's accounting.
pub fn pod_requests(spec: &PodSpecView) -> Resources {
    aggregate(spec, container_requests)
}

/// What the pod counts for in scores.
pub fn pod_non_zero_requests(spec: &PodSpecView) -> NonZero {
    let r = aggregate(spec, container_non_zero);
    NonZero { milli_cpu: r.milli_cpu, memory: r.memory }
}

/// What a node offers: its allocatable resources (its capacity when it
/// reports no allocatable) and how many pods it takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocatable {
    /// CPU, memory, storage and scalar resources.
    pub resources: Resources,
    /// The most pods the node runs.
    pub pods: i64,
}

impl Allocatable {
    /// Reads a node's allocatable (or, lacking it, capacity) list.
    pub fn from_status(
        allocatable: Option<&BTreeMap<String, Quantity>>,
        capacity: Option<&BTreeMap<String, Quantity>>,
    ) -> Allocatable {
        let Some(list) = allocatable.or(capacity) else { return Allocatable::default() };
        Allocatable { resources: Resources::from_list(list), pods: list.get("pods").map_or(0, |q| amount("pods", q)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{RequestsView, ResourceList};

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
    }

    fn container(requests: &[(&str, &str)], sidecar: bool) -> ContainerView {
        ContainerView {
            name: "c".into(),
            restart_policy: sidecar.then(|| "Always".to_string()),
            resources: RequestsView { requests: ResourceList(list(requests).into_iter().collect()) },
            ports: Vec::new(),
        }
    }

    #[test]
    fn parses_cpu_in_millis_and_memory_in_bytes() {
        let r = Resources::from_list(&list(&[("cpu", "1.5"), ("memory", "1Gi"), ("example.com/gpu", "2"), ("x", "1")]));
        assert_eq!(r.milli_cpu, 1500);
        assert_eq!(r.memory, 1 << 30);
        assert_eq!(r.scalar("example.com/gpu"), 2);
        assert_eq!(r.scalar, vec![("example.com/gpu".to_string(), 2)], "unknown plain names are not accounted");
    }

    #[test]
    fn pod_requests_sum_containers_and_take_the_largest_init_container() {
        let spec = PodSpecView {
            containers: vec![
                container(&[("cpu", "100m"), ("memory", "64Mi")], false),
                container(&[("cpu", "200m")], false),
            ],
            init_containers: Some(vec![container(&[("cpu", "500m")], false), container(&[("memory", "32Mi")], false)]),
            overhead: Some(list(&[("cpu", "10m")])),
            ..Default::default()
        };
        let r = pod_requests(&spec);
        assert_eq!((r.milli_cpu, r.memory), (510, 64 << 20));
    }

    #[test]
    fn sidecar_init_containers_add_to_the_pod_and_to_later_init_containers() {
        let spec = PodSpecView {
            containers: vec![container(&[("cpu", "100m")], false)],
            init_containers: Some(vec![container(&[("cpu", "50m")], true), container(&[("cpu", "300m")], false)]),
            ..Default::default()
        };
        // Sidecar (50m) runs beside the containers (150m) and beside the second init container (350m).
        assert_eq!(pod_requests(&spec).milli_cpu, 350);
    }

    #[test]
    fn non_zero_requests_default_missing_cpu_and_memory() {
        let spec = PodSpecView {
            containers: vec![container(&[], false), container(&[("cpu", "0"), ("memory", "1Mi")], false)],
            ..Default::default()
        };
        let nz = pod_non_zero_requests(&spec);
        assert_eq!(nz, NonZero { milli_cpu: 100, memory: DEFAULT_MEMORY_REQUEST + (1 << 20) });
        assert_eq!(pod_requests(&spec).milli_cpu, 0);
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let cap = list(&[("cpu", "4"), ("memory", "8Gi"), ("pods", "110")]);
        let a = Allocatable::from_status(None, Some(&cap));
        assert_eq!((a.resources.milli_cpu, a.pods), (4000, 110));
        let alloc = list(&[("cpu", "3500m"), ("pods", "100")]);
        assert_eq!(Allocatable::from_status(Some(&alloc), Some(&cap)).resources.milli_cpu, 3500);
    }

    #[test]
    fn add_and_sub_cover_scalar_resources() {
        let mut a = Resources::from_list(&list(&[("cpu", "1"), ("example.com/gpu", "1")]));
        let b = Resources::from_list(&list(&[("cpu", "500m"), ("example.com/fpga", "2")]));
        a.add(&b);
        assert_eq!((a.milli_cpu, a.scalar("example.com/gpu"), a.scalar("example.com/fpga")), (1500, 1, 2));
        a.sub(&b);
        assert_eq!((a.milli_cpu, a.scalar("example.com/fpga")), (1000, 0));
    }
}
