"""The official Python `kubernetes` client against rkube-apiserver's REST API:
typed CRUD, a conflict, a label-selected list, a watch, patches, the scale
subresource and deletes. Run by e2e/tests/python_client.rs with the path of
a kubeconfig; prints OK when every check held."""

import json
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()
NS = "default"


def expect_status(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, f"expected {code}, got {e.status}: {e.body}"
        return e
    raise AssertionError(f"expected HTTP {code}, the call succeeded")


# Typed create, read and list by label.
cm = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="py-cm", labels={"from": "python"}), data={"a": "1"}
)
created = core.create_namespaced_config_map(NS, cm)
assert created.metadata.uid and created.metadata.resource_version, created.metadata
first = core.read_namespaced_config_map("py-cm", NS)
assert first.data == {"a": "1"}, first.data
listed = core.list_namespaced_config_map(NS, label_selector="from=python")
assert [i.metadata.name for i in listed.items] == ["py-cm"], listed.items
expect_status(409, core.create_namespaced_config_map, NS, cm)

# A patch (the client sends a dict as a strategic merge patch), then a
# replace from the stale copy is a conflict, and from a fresh one works.
core.patch_namespaced_config_map("py-cm", NS, {"data": {"b": "2"}})
assert core.read_namespaced_config_map("py-cm", NS).data == {"a": "1", "b": "2"}
first.data["a"] = "3"
expect_status(409, core.replace_namespaced_config_map, "py-cm", NS, first)
fresh = core.read_namespaced_config_map("py-cm", NS)
fresh.data["a"] = "3"
assert core.replace_namespaced_config_map("py-cm", NS, fresh).data["a"] == "3"

# A watch: the current object as ADDED, then a create and a delete.
events = []
ready = threading.Event()


def watch_configmaps():
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, NS, label_selector="from=python", timeout_seconds=20):
        events.append((ev["type"], ev["object"].metadata.name))
        ready.set()
        if ("DELETED", "py-cm2") in events:
            w.stop()


t = threading.Thread(target=watch_configmaps)
t.start()
assert ready.wait(15), "the watch delivered nothing"
core.create_namespaced_config_map(
    NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm2", labels={"from": "python"}))
)
core.delete_namespaced_config_map("py-cm2", NS)
t.join(30)
assert events[0] == ("ADDED", "py-cm"), events
assert ("ADDED", "py-cm2") in events and ("DELETED", "py-cm2") in events, events

# A Deployment, its scale subresource, a JSON patch; typed pods.
dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py-web"),
    spec=client.V1DeploymentSpec(
        replicas=0,
        selector=client.V1LabelSelector(match_labels={"app": "py-web"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "py-web"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="rkube/pause:3.9")]),
        ),
    ),
)
apps.create_namespaced_deployment(NS, dep)
scale = apps.read_namespaced_deployment_scale("py-web", NS)
assert scale.spec.replicas == 0 and scale.status.selector == "app=py-web", scale
apps.patch_namespaced_deployment_scale("py-web", NS, {"spec": {"replicas": 2}})
assert apps.read_namespaced_deployment("py-web", NS).spec.replicas == 2
apps.patch_namespaced_deployment("py-web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 0}])
assert apps.read_namespaced_deployment("py-web", NS).spec.replicas == 0
pods = core.list_namespaced_pod(NS)
assert isinstance(pods.items, list)

# Errors are Kubernetes' Status; deletes take DeleteOptions.
e = expect_status(404, core.read_namespaced_config_map, "missing", NS)
status = json.loads(e.body)
assert status["reason"] == "NotFound" and status["message"] == 'configmaps "missing" not found', status
core.delete_namespaced_config_map("py-cm", NS, body=client.V1DeleteOptions(grace_period_seconds=0))
apps.delete_namespaced_deployment("py-web", NS, propagation_policy="Foreground")
expect_status(404, core.read_namespaced_config_map, "py-cm", NS)
print("OK")
