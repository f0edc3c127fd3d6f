"""The real node: what the e2e tests about serving need to run real pods and talk to them.

The local cluster's real node (e2e/cluster/node.sh) runs containers from images built here (e2e/images). Its pods
and the cluster's Services have addresses on this machine's own bridge only; tests send traffic to those and to
loopback, nothing else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kube import get_json, kubectl, wait_for

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "e2e" / "images"
# What a pod must say to land on the real node rather than on a KWOK fake.
REAL_NODE_LABEL = {"aifleet.dev/node": "real"}
REAL_NODE_TOLERATION = {"key": "aifleet.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}
# The default Triton image of the renderer also exists under the next version's tag, for rollouts.
NEXT_TRITON_VERSION = "24.09-py3"
PROMETHEUS_PORT = 9090


@dataclass(frozen=True)
class RealNode:
    name: str
    ip: str
    pod_network: str
    service_network: str
    # A directory on the node that the pods' users can read: hostPath volumes (model repositories) live here.
    volumes: Path

    @property
    def networks(self) -> list[str]:
        """The cluster's own address ranges on this machine's bridge: the only non-loopback targets allowed."""
        return [self.pod_network, self.service_network]

    def owns(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(net) for net in self.networks)


def pinning_annotations() -> dict[str, str]:
    """Namespace annotations (PodNodeSelector, PodTolerationRestriction admission) that put every pod of the
    namespace on the real node, so what aifleet renders schedules there with no change to the AIService."""
    return {
        "scheduler.alpha.kubernetes.io/node-selector": ",".join(f"{k}={v}" for k, v in REAL_NODE_LABEL.items()),
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps([REAL_NODE_TOLERATION]),
    }


def pinned_namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Namespace whose pods all run on the real node."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}, "annotations": pinning_annotations()}}


def cluster_env() -> dict[str, str]:
    """The settings up.sh wrote beside the kubeconfig (empty for a cluster it did not start)."""
    kubeconfig = os.environ.get("KUBECONFIG", "")
    path = Path(kubeconfig).parent / "cluster.env" if kubeconfig else None
    if not path or not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return dict(pairs)


def find_real_node() -> RealNode:
    nodes = json.loads(kubectl("get", "nodes", "-l", "aifleet.dev/node=real", "-o", "json"))["items"]
    if not nodes:
        raise AssertionError("no real node (label aifleet.dev/node=real) in this cluster: e2e/cluster/up.sh starts one")
    node = nodes[0]
    ready = next((c for c in node["status"].get("conditions", []) if c["type"] == "Ready"), {})
    if ready.get("status") != "True":
        raise AssertionError(f"real node {node['metadata']['name']} is not Ready: {ready}")
    ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    env = cluster_env()
    return RealNode(
        name=node["metadata"]["name"],
        ip=ip,
        pod_network=env.get("AIFLEET_NODE_POD_CIDR", str(ipaddress.ip_network(f"{ip}/24", strict=False))),
        service_network=env.get("AIFLEET_SERVICE_CIDR", "10.96.0.0/16"),
        volumes=Path(env.get("AIFLEET_NODE_VOLUMES", "/var/tmp/aifleet-volumes")),
    )


def prometheus_scrape_config(node: RealNode, kubeconfig: str, interval: str = "1s") -> dict[str, Any]:
    """Pods discovered through the API server by their scrape annotations, as a cluster's Prometheus does.

    Only pods on the real node are kept: KWOK's fake pods have addresses no host has.
    """
    return {
        "job_name": "kubernetes-pods",
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": kubeconfig}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_node_name"], "regex": node.name, "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "regex": "true",
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
             "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


@contextlib.contextmanager
def node_prometheus(node: RealNode, state_dir: Path) -> Iterator[Any]:
    """A real Prometheus on the node's bridge address that discovers the node's pods through the API server,
    published at the operator's default address. Debian's Prometheus has no Kubernetes service discovery; this
    one is built from the Go module."""
    import harness

    binary = subprocess.run(["bash", str(ROOT / "e2e" / "tools" / "build-prometheus.sh")], check=True,
                            capture_output=True, text=True, timeout=1800).stdout.strip().splitlines()[-1]
    kubeconfig = Path(cluster_env().get("AIFLEET_CLUSTER_DIR", "")) / "kubeconfigs" / "prometheus.kubeconfig"
    if not kubeconfig.exists():
        kubeconfig = Path(os.environ["KUBECONFIG"])
    with harness.Prometheus(state_dir, host=node.ip, port=PROMETHEUS_PORT, scrape_interval="1s", sd_refresh="1s",
                            binary=binary, extra_scrape_configs=[prometheus_scrape_config(node, str(kubeconfig))]) as prom:
        publish_prometheus(node, PROMETHEUS_PORT)
        yield prom


def publish_prometheus(node: RealNode, port: int) -> None:
    """`prometheus-operated.monitoring.svc:9090`, the operator's default address, names the host's Prometheus."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus-operated", "namespace": "monitoring"},
         "spec": {"ports": [{"name": "web", "port": 9090, "targetPort": port, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "prometheus-operated-host", "namespace": "monitoring",
                      "labels": {"kubernetes.io/service-name": "prometheus-operated",
                                 "endpointslice.kubernetes.io/managed-by": "aifleet.dev-e2e"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [node.ip], "conditions": {"ready": True}}],
         "ports": [{"name": "web", "port": port, "protocol": "TCP"}]},
    ]))


def models_directory(out: Path, **flags: Any) -> Path:
    """A Triton model repository (e2e/images/models.py), readable by the pods' user."""
    argv = [sys.executable, str(IMAGES / "models.py"), str(out)]
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    for path in [out, *out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return out


@contextlib.contextmanager
def models_volume(node: RealNode, namespace: str, directory: Path, claim: str = "models") -> Iterator[str]:
    """A PersistentVolume on the real node holding `directory`, bound to claim `claim` in `namespace`."""
    pv = f"{claim}-{namespace}"[:63]  # a namespace may claim more than one repository (a canary's)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "PersistentVolume",
         "metadata": {"name": pv, "labels": {"aifleet.dev/e2e": "models"}},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "hostPath": {"path": str(directory), "type": "Directory"},
                  "claimRef": {"namespace": namespace, "name": claim},
                  "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                      {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.name]}]}]}}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
         "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}},
    ]))
    wait_for(f"claim {claim} bound", lambda: (get_json("pvc", claim, "-n", namespace) or {})
             .get("status", {}).get("phase") == "Bound", timeout=60)
    try:
        yield claim
    finally:
        kubectl("delete", "pvc", claim, "-n", namespace, "--wait=false", check=False)
        kubectl("delete", "pv", pv, "--wait=false", check=False)


def real_aiservice(name: str, namespace: str, *, prometheus: str, models: list[str] | None = None,
                   min_replicas: int = 1, max_replicas: int = 1, target_rps: float = 10,
                   **inference: Any) -> dict[str, Any]:
    """An AIService for a namespace pinned to the real node, its pods sized for this machine (the model, not
    the CPU, sets a pod's capacity)."""
    return {
        "apiVersion": "aifleet.dev/v1alpha1",
        "kind": "AIService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "inference": {
                "modelRepository": {"persistentVolumeClaim": "models"},
                "models": models or ["echo"],
                "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
                "shmSize": "64Mi",
                "probes": {"periodSeconds": 2, "failureThreshold": 3, "startupTimeoutSeconds": 120},
                **inference,
            },
            "autoscaling": {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "targetRPSPerPod": target_rps,
                "metrics": {"address": prometheus, "warmupSeconds": 30},
            },
        },
    }


def triton_pods(name: str, namespace: str) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/component=triton"
    return json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]


def pod_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds) and not pod["metadata"].get(
        "deletionTimestamp")


def ready_pods(name: str, namespace: str) -> list[dict[str, Any]]:
    return [p for p in triton_pods(name, namespace) if pod_ready(p)]


def service_ip(name: str, namespace: str) -> str:
    svc = get_json("service", name, "-n", namespace)
    assert svc, f"Service {namespace}/{name} not found"
    return svc["spec"]["clusterIP"]


def http_text(url: str, node: RealNode, timeout: float = 5) -> str:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    assert host in ("127.0.0.1", "localhost") or node.owns(host), f"refusing {url}: not on this machine"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def answers(url: str, node: RealNode) -> bool:
    """Whether `url` (on this machine) answers at all: a Service's ClusterIP refuses until kube-proxy routes it."""
    try:
        http_text(url, node, timeout=2)
    except OSError:
        return False
    return True


def counter(metrics_text: str, metric: str, **labels: str) -> float:
    """Sum of a Prometheus text-format counter over the series whose labels include `labels`."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def pod_requests(pod: dict[str, Any], node: RealNode, model: str = "echo") -> float:
    """Successful inferences a Triton pod has served, from its own metrics endpoint."""
    text = http_text(f"http://{pod['status']['podIP']}:8002/metrics", node)
    return counter(text, "nv_inference_request_success", model=model)


def conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions", [])}


def ready_aiservice(name: str, namespace: str) -> dict[str, Any] | None:
    obj = get_json("aiservice", name, "-n", namespace)
    return obj if conditions(obj).get("Ready", {}).get("status") == "True" else None


def wait_ready(name: str, namespace: str, timeout: float = 240) -> dict[str, Any]:
    return wait_for(f"AIService {namespace}/{name} Ready", lambda: ready_aiservice(name, namespace),
                    timeout=timeout, interval=1)


def events(namespace: str, name: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl("get", "events", "-n", namespace, "--field-selector",
                               f"involvedObject.name={name}", "-o", "json"))["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))
