#!/usr/bin/env python3
"""Generates apiserver/src/protobuf/schema.rs: the table the protobuf body decoder walks.

For every message reachable from the kinds rkube decodes, the table lists each field's
protobuf tag, wire type and Kubernetes JSON name. Inputs, all read from the local cargo
registry (run `cargo fetch` first):

- k8s-pb (prost types generated from k8s.io/api's generated.proto): messages, tags, types.
  prost field idents are the snake_case of the proto names, which are the JSON names, but
  snake_case loses their case ("diskURI" -> disk_uri), so
- k8s-openapi (serde types generated from the OpenAPI spec) supplies the exact JSON names,
  which fields are required, and which proto fields Go inlines into their parent
  (`json:",inline"`, e.g. Volume.volumeSource).
- POINTER_FIELDS below: the scalar fields that are pointers in Go (read off k8s.io/api's
  zz_generated.deepcopy.go). gogo-protobuf always writes a non-pointer field, zero or not,
  and Go's JSON encoder drops zero `omitempty` fields, so a zero on the wire means "unset"
  unless the field is a pointer (`replicas: 0`) or required (`containerPort`).

Usage: python3 deploy/gen-protobuf-schema.py > apiserver/src/protobuf/schema.rs &&
       rustfmt --edition 2024 --config-path rustfmt.toml apiserver/src/protobuf/schema.rs
"""

import glob
import os
import re
import sys
from collections import OrderedDict

REGISTRY = os.path.expanduser("~/.cargo/registry/src")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def crate_dir(name):
    found = sorted(glob.glob(os.path.join(REGISTRY, "*", name)))
    if not found:
        sys.exit(f"{name} not in {REGISTRY}; run `cargo fetch`")
    return found[-1]


PB = os.path.join(crate_dir("k8s-pb-0.9.0"), "src")
OPENAPI_ROOT = os.path.join(crate_dir("k8s-openapi-0.29.0"), "src")
# The newest API version k8s-openapi knows: its field names are a superset of older ones.
OPENAPI = sorted(glob.glob(os.path.join(OPENAPI_ROOT, "v1_*")), key=lambda p: int(p.rsplit("_", 1)[1]))[-1]

# Kinds decoded besides those of api/src/resource.rs: what typed clients (kubectl's
# `auth can-i`, `create token`, `drain`) send.
EXTRA_ROOTS = [
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authentication.k8s.io/v1", "TokenReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("policy/v1", "Eviction"),
    ("autoscaling/v1", "Scale"),
]

# Go pointer scalars (and *IntOrString): "<group>/<version>.<Message>" -> JSON names.
POINTER_FIELDS = {
    "core/v1.AppArmorProfile": "localhostProfile",
    "core/v1.AzureDiskVolumeSource": "cachingMode fsType readOnly kind",
    "core/v1.AzureFilePersistentVolumeSource": "secretNamespace",
    "core/v1.CSIVolumeSource": "readOnly fsType",
    "core/v1.ClientIPConfig": "timeoutSeconds",
    "core/v1.ClusterTrustBundleProjection": "name signerName optional",
    "core/v1.ConfigMap": "immutable",
    "core/v1.ConfigMapEnvSource": "optional",
    "core/v1.ConfigMapKeySelector": "optional",
    "core/v1.ConfigMapProjection": "optional",
    "core/v1.ConfigMapVolumeSource": "defaultMode optional",
    "core/v1.Container": "restartPolicy",
    "core/v1.ContainerStatus": "started stopSignal",
    "core/v1.DownwardAPIVolumeFile": "mode",
    "core/v1.DownwardAPIVolumeSource": "defaultMode",
    "core/v1.EndpointAddress": "nodeName",
    "core/v1.EndpointPort": "appProtocol",
    "core/v1.EphemeralContainerCommon": "restartPolicy",
    "core/v1.FCVolumeSource": "lun",
    "core/v1.FileKeySelector": "optional",
    "core/v1.GRPCAction": "service",
    "core/v1.GlusterfsPersistentVolumeSource": "endpointsNamespace",
    "core/v1.HostPathVolumeSource": "type",
    "core/v1.ISCSIPersistentVolumeSource": "initiatorName",
    "core/v1.ISCSIVolumeSource": "initiatorName",
    "core/v1.KeyToPath": "mode",
    "core/v1.Lifecycle": "stopSignal",
    "core/v1.LoadBalancerIngress": "ipMode",
    "core/v1.LocalVolumeSource": "fsType",
    "core/v1.NodeFeatures": "supplementalGroupsPolicy",
    "core/v1.NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts userNamespaces",
    "core/v1.NodeSwapStatus": "capacity",
    "core/v1.PersistentVolumeClaimSpec": "storageClassName volumeMode volumeAttributesClassName",
    "core/v1.PersistentVolumeClaimStatus": "currentVolumeAttributesClassName",
    "core/v1.PersistentVolumeSpec": "volumeMode volumeAttributesClassName",
    "core/v1.PodCertificateProjection": "maxExpirationSeconds",
    "core/v1.PodDNSConfigOption": "value",
    "core/v1.PodResourceClaim": "resourceClaimName resourceClaimTemplateName",
    "core/v1.PodResourceClaimStatus": "resourceClaimName",
    "core/v1.PodSecurityContext": "runAsUser runAsGroup runAsNonRoot supplementalGroupsPolicy fsGroup "
    "fsGroupChangePolicy seLinuxChangePolicy",
    "core/v1.PodSpec": "terminationGracePeriodSeconds activeDeadlineSeconds automountServiceAccountToken "
    "shareProcessNamespace priority runtimeClassName enableServiceLinks preemptionPolicy setHostnameAsFQDN "
    "hostUsers hostnameOverride",
    "core/v1.PortStatus": "error",
    "core/v1.Probe": "terminationGracePeriodSeconds",
    "core/v1.ProjectedVolumeSource": "defaultMode",
    "core/v1.ReplicationControllerSpec": "replicas",
    "core/v1.ResourceHealth": "message",
    "core/v1.SeccompProfile": "localhostProfile",
    "core/v1.Secret": "immutable",
    "core/v1.SecretEnvSource": "optional",
    "core/v1.SecretKeySelector": "optional",
    "core/v1.SecretProjection": "optional",
    "core/v1.SecretVolumeSource": "defaultMode optional",
    "core/v1.SecurityContext": "privileged runAsUser runAsGroup runAsNonRoot readOnlyRootFilesystem "
    "allowPrivilegeEscalation procMount",
    "core/v1.ServiceAccount": "automountServiceAccountToken",
    "core/v1.ServiceAccountTokenProjection": "expirationSeconds",
    "core/v1.ServicePort": "appProtocol",
    "core/v1.ServiceSpec": "ipFamilyPolicy allocateLoadBalancerNodePorts loadBalancerClass "
    "internalTrafficPolicy trafficDistribution",
    "core/v1.Toleration": "tolerationSeconds",
    "core/v1.TopologySpreadConstraint": "minDomains nodeAffinityPolicy nodeTaintsPolicy",
    "core/v1.TypedLocalObjectReference": "apiGroup",
    "core/v1.TypedObjectReference": "apiGroup namespace",
    "core/v1.VolumeMount": "recursiveReadOnly mountPropagation",
    "core/v1.VolumeMountStatus": "recursiveReadOnly",
    "core/v1.WindowsSecurityContextOptions": "gmsaCredentialSpecName gmsaCredentialSpec runAsUserName hostProcess",
    "meta/v1.ObjectMeta": "deletionGracePeriodSeconds",
    "meta/v1.OwnerReference": "controller blockOwnerDeletion",
    "meta/v1.ListMeta": "remainingItemCount",
    "apps/v1.DaemonSetSpec": "revisionHistoryLimit",
    "apps/v1.DaemonSetStatus": "collisionCount",
    "apps/v1.DeploymentSpec": "replicas revisionHistoryLimit progressDeadlineSeconds",
    "apps/v1.DeploymentStatus": "collisionCount terminatingReplicas",
    "apps/v1.ReplicaSetSpec": "replicas",
    "apps/v1.ReplicaSetStatus": "terminatingReplicas",
    "apps/v1.RollingUpdateDaemonSet": "maxUnavailable maxSurge",
    "apps/v1.RollingUpdateDeployment": "maxUnavailable maxSurge",
    "batch/v1.JobSpec": "parallelism completions activeDeadlineSeconds podFailurePolicy backoffLimit "
    "backoffLimitPerIndex maxFailedIndexes manualSelector ttlSecondsAfterFinished completionMode suspend "
    "podReplacementPolicy managedBy",
    "batch/v1.JobStatus": "ready failedIndexes terminating",
    "batch/v1.PodFailurePolicyRule": "onExitCodes",
    "batch/v1.PodFailurePolicyOnExitCodesRequirement": "containerName",
    "batch/v1.SuccessPolicyRule": "succeededIndexes succeededCount",
    "autoscaling/v1.HorizontalPodAutoscalerSpec": "minReplicas targetCPUUtilizationPercentage",
    "autoscaling/v1.HorizontalPodAutoscalerStatus": "observedGeneration currentCPUUtilizationPercentage",
    "autoscaling/v2.HorizontalPodAutoscalerSpec": "minReplicas",
    "autoscaling/v2.HorizontalPodAutoscalerStatus": "observedGeneration",
    "autoscaling/v2.HPAScalingRules": "stabilizationWindowSeconds selectPolicy",
    "autoscaling/v2.MetricTarget": "averageUtilization",
    "autoscaling/v2.MetricValueStatus": "averageUtilization",
    "coordination/v1.LeaseSpec": "holderIdentity leaseDurationSeconds leaseTransitions strategy preferredHolder",
    "discovery/v1.Endpoint": "hostname nodeName zone",
    "discovery/v1.EndpointConditions": "ready serving terminating",
    "discovery/v1.EndpointPort": "name protocol port appProtocol",
    "policy/v1.PodDisruptionBudgetSpec": "minAvailable maxUnavailable unhealthyPodEvictionPolicy",
    "authentication/v1.TokenRequestSpec": "expirationSeconds",
}

# Messages with a JSON form of their own; the decoder knows how to render each.
SPECIAL_SHAPES = {
    "apimachinery::pkg::api::resource::Quantity": "Quantity",
    "apimachinery::pkg::apis::meta::v1::Time": "Time",
    "apimachinery::pkg::apis::meta::v1::MicroTime": "MicroTime",
    # No kind decoded yet reaches metav1.Duration (JSON: a Go duration string, "1m30s").
    "apimachinery::pkg::apis::meta::v1::Duration": None,
    "apimachinery::pkg::apis::meta::v1::FieldsV1": "RawJson",
    "apimachinery::pkg::runtime::RawExtension": "RawJson",
    "apimachinery::pkg::util::intstr::IntOrString": "IntOrString",
}

SCALARS = {"string": "String", "bool": "Bool", "int32": "Int32", "int64": "Int64", "double": "Double"}


def die(msg):
    sys.exit(f"gen-protobuf-schema: {msg}")


# ---------------------------------------------------------------- k8s-pb


def parse_pb():
    """Returns ({"mod::Name": [field, ...]}, {(apiVersion, kind): "mod::Name"})."""
    messages, resources = {}, {}
    for path in sorted(glob.glob(os.path.join(PB, "**", "mod.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), PB).replace(os.sep, "::")
        lines = open(path, encoding="utf-8").read().split("\n")
        i, current, attr = 0, None, None
        while i < len(lines):
            line = lines[i]
            m = re.match(r"pub struct (\w+) \{$", line)
            if m:
                current = []
                messages[f"{module}::{m.group(1)}"] = current
            elif line == "}":
                current = None
            elif current is not None and line.strip().startswith("#[prost("):
                attr = line.strip()[len("#[prost(") : -2]
            elif current is not None and attr is not None and line.strip().startswith("pub "):
                decl = line.strip()
                while not (decl.endswith(",") and decl.count("<") == decl.count(">")):
                    i += 1
                    decl += lines[i].strip()
                m = re.match(r"pub (?:r#)?(\w+):\s*(.*),$", decl)
                current.append(pb_field(module, attr, m.group(1), m.group(2)))
                attr = None
            m = re.match(r"impl crate::Resource for (\w+) \{$", line)
            if m:
                block = "\n".join(lines[i : i + 6])
                api_version = re.search(r'API_VERSION: &\'static str = "([^"]*)"', block).group(1)
                kind = re.search(r'KIND: &\'static str = "([^"]*)"', block).group(1)
                resources[(api_version, kind)] = f"{module}::{m.group(1)}"
            i += 1
    return messages, resources


def resolve(module, path):
    """A Rust type path, relative to `module`, as "mod::Name"."""
    parts = path.split("::")
    base = module.split("::")
    while parts[0] == "super":
        parts.pop(0)
        base.pop()
    return "::".join(base + parts)


def pb_field(module, attr, ident, ty):
    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
    kind = attr.split(",")[0].strip()
    field = {"ident": ident, "tag": tag, "card": "Single", "msg": None}
    if kind.startswith("btree_map"):
        value = re.search(r'btree_map = "string, (\w+)"', attr).group(1)
        field["card"] = "Map"
        if value == "message":
            inner = re.search(r"BTreeMap<::prost::alloc::string::String,\s*([\w:]+),?>$", ty).group(1)
            field["ty"], field["msg"] = "Message", resolve(module, inner.strip())
        else:
            field["ty"] = "Bytes" if value == "bytes" else SCALARS[value]
        return field
    if "repeated" in attr:
        field["card"] = "Repeated"
    if kind == "message":
        m = re.search(r"<(?:::prost::alloc::boxed::Box<)?([\w:]+),?>+$", ty)
        if not m:
            die(f"cannot parse type {ty!r} of {module} {ident}")
        inner = m.group(1)
        field["ty"], field["msg"] = "Message", resolve(module, inner)
    elif kind.startswith("bytes"):
        field["ty"] = "Bytes"
    else:
        field["ty"] = SCALARS[kind]
    return field


# ---------------------------------------------------------------- k8s-openapi


def parse_openapi():
    """Returns {"mod::Name": {"names": {squashed: json}, "required": {json}}}."""
    structs = {}
    for path in sorted(glob.glob(os.path.join(OPENAPI, "**", "*.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), OPENAPI).replace(os.sep, "::")
        text = open(path, encoding="utf-8").read()
        m = re.search(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.S | re.M)
        if not m:
            continue
        optional = {}
        for fm in re.finditer(r"^    pub (\w+): (.*),$", m.group(2), re.M):
            optional[fm.group(1)] = fm.group(2).startswith("Option<")
        names, required = {}, set()
        for am in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', text):
            json, ident = am.group(1), am.group(2)
            names[squash(json)] = json
            if not optional.get(ident, True):
                required.add(json)
        # prost renames PodDNSConfig to PodDnsConfig; key by the squashed name.
        structs[f"{module}::{squash(m.group(1))}"] = {"name": m.group(1), "names": names, "required": required}
    return structs


def squash(name):
    return name.replace("_", "").lower()


def camel(ident):
    head, *rest = ident.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def openapi_key(full):
    module, _, name = full.rpartition("::")
    return f"{module}::{squash(name)}"


def group_version(full):
    """"api::core::v1::Pod" -> "core/v1"; "apimachinery::pkg::apis::meta::v1::ObjectMeta" -> "meta/v1"."""
    parts = full.split("::")
    return f"{parts[-3]}/{parts[-2]}"


# ---------------------------------------------------------------- main


def roots_from_resource_table():
    text = open(os.path.join(REPO, "api", "src", "resource.rs"), encoding="utf-8").read()
    found = re.findall(r'resource!\(\s*"[^"]*",\s*"[^"]*",\s*"([^"]*)",\s*"([^"]*)"', text)
    if not found:
        die("no resource!(...) entries in api/src/resource.rs")
    return found


def main():
    pb, pb_resources = parse_pb()
    pointer_fields = {}
    for key, names in POINTER_FIELDS.items():
        gv, _, message = key.partition(".")
        pointer_fields[f"{gv}.{squash(message)}"] = names
    openapi = parse_openapi()
    warnings = []

    roots = []
    for api_version, kind in roots_from_resource_table() + EXTRA_ROOTS:
        name = pb_resources.get((api_version, kind))
        if name is None:
            group, _, version = api_version.rpartition("/")
            name = f"api::{group.split('.')[0] or 'core'}::{version}::{kind}"
        if name not in pb:
            warnings.append(f"{api_version} {kind}: not in k8s-pb, not decodable")
            continue
        if (api_version, kind) not in [(a, k) for a, k, _ in roots]:
            roots.append((api_version, kind, name))

    # Every message reachable from the roots, in a stable order.
    order = OrderedDict()
    queue = [name for _, _, name in roots]
    while queue:
        name = queue.pop(0)
        if name in order:
            continue
        if name not in pb:
            die(f"message {name} not found in k8s-pb")
        order[name] = len(order)
        if name in SPECIAL_SHAPES:
            if SPECIAL_SHAPES[name] is None:
                die(f"{name} is reachable but apiserver/src/protobuf.rs has no Shape for it")
            continue
        for f in pb[name]:
            if f["msg"]:
                queue.append(f["msg"])
    if len(order) > 0xFFFF:
        die("too many messages for u16 indices")

    # Go inlines some structs into their parent (`json:",inline"`); k8s-openapi has no type
    # for them, their fields live in the parent's. Such a field is a message field whose
    # name the parent's JSON lacks; its message then takes its names from the parent.
    apis = {name: openapi[openapi_key(name)] for name in order if openapi_key(name) in openapi}
    inline = set()
    for name in order:
        api = apis.get(name)
        if api is None or name in SPECIAL_SHAPES:
            continue
        for f in pb[name]:
            if f["msg"] and f["card"] == "Single" and squash(f["ident"]) not in api["names"]:
                inner = [squash(g["ident"]) for g in pb[f["msg"]]]
                if all(n in api["names"] for n in inner):
                    inline.add((name, f["ident"]))
                    host = apis.setdefault(f["msg"], {"name": None, "names": {}, "required": set()})
                    host["names"].update({n: api["names"][n] for n in inner})
                    host["required"] |= {api["names"][n] for n in inner} & api["required"]

    def shape(name):
        if name in SPECIAL_SHAPES:
            return SPECIAL_SHAPES[name]
        fields = pb[name]
        if name not in apis and len(fields) == 1 and fields[0]["ident"] == "items" and fields[0]["card"] == "Repeated" and fields[0]["ty"] == "String":
            return "StringList"  # e.g. authentication/v1 ExtraValue: a []string in Go and JSON
        return "Object"

    out = []
    out.append("// @generated by deploy/gen-protobuf-schema.py from k8s-pb 0.9 and k8s-openapi 0.29")
    out.append(f"// ({os.path.basename(OPENAPI)} JSON names). Do not edit; rerun the script.")
    out.append("")
    out.append("use super::{Card::*, Field, Message, Shape, Ty::*};")
    out.append("")
    out.append("/// (apiVersion, kind) -> index into [`MESSAGES`], sorted for binary search.")
    out.append("pub(super) static ROOTS: &[(&str, &str, u16)] = &[")
    for api_version, kind, name in sorted(roots):
        out.append(f'    ("{api_version}", "{kind}", {order[name]}),')
    out.append("];")
    out.append("")
    out.append("/// Every message reachable from [`ROOTS`]; fields sorted by tag.")
    out.append("pub(super) static MESSAGES: &[Message] = &[")
    for name, index in order.items():
        sh = shape(name)
        out.append(f"    // {index}")
        out.append("    Message {")
        go_name = (apis.get(name) or {}).get("name") or name.rsplit("::", 1)[1]
        out.append(f'        name: "{go_name}",')
        out.append(f"        shape: Shape::{sh},")
        if sh != "Object":
            out.append("        fields: &[],")
            out.append("    },")
            continue
        api = apis.get(name)
        if api is None:
            warnings.append(f"{name}: no k8s-openapi type, JSON names guessed from field idents")
            api = {"names": {}, "required": set()}
        pointers = set(pointer_fields.get(f"{group_version(name)}.{squash(name.rsplit('::', 1)[1])}", "").split())
        out.append("        fields: &[")
        for f in sorted(pb[name], key=lambda f: f["tag"]):
            json = api["names"].get(squash(f["ident"]))
            card = f["card"]
            if (name, f["ident"]) in inline:
                json, card = "", "Inline"
            if json is None:
                json = camel(f["ident"])
                if api["names"]:
                    warnings.append(f"{name}.{f['ident']}: not in k8s-openapi, guessed JSON name {json!r}")
            ty = f"Message({order[f['msg']]})" if f["msg"] else f["ty"]
            keep = json in pointers or json in api["required"]
            out.append(
                f'            Field {{ tag: {f["tag"]}, json: "{json}", ty: {ty}, card: {card}, keep_zero: {str(keep).lower()} }},'
            )
        out.append("        ],")
        out.append("    },")
        unused = pointers - {api["names"].get(squash(f["ident"])) for f in pb[name]}
        for u in sorted(unused):
            warnings.append(f"{name}: pointer field {u!r} not in k8s-pb")
    out.append("];")
    print("\n".join(out))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{len(roots)} kinds, {len(order)} messages", file=sys.stderr)


if __name__ == "__main__":
    main()
