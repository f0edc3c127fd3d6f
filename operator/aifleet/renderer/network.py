"""A component's NetworkPolicy: its client ports open to the AIService's namespace and `clientNamespaces`, its
metrics port to `metricsNamespaces` (or every namespace), nothing else in. Pure."""

from __future__ import annotations

from typing import Any

from ..api import AIService
from ..api.children import common_labels, selector_labels

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server


def _namespaces(names: list[str]) -> list[dict[str, Any]]:
    return [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}} for name in sorted(names)]


def _ports(ports: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"port": port, "protocol": "TCP"} for port in ports]


def network_policy(
    ais: AIService, component: str, name: str, client_ports: tuple[int, ...], metrics_ports: tuple[int, ...] = ()
) -> list[dict[str, Any]]:
    """The component's NetworkPolicy (named like its workload), or none when `spec.networkPolicy` is off.
    Ports are the pods' own (container) ports, as a NetworkPolicy matches them."""
    spec = ais.spec.network_policy
    if not spec.enabled:
        return []
    ingress = [{"from": [{"podSelector": {}}, *_namespaces(spec.client_namespaces)], "ports": _ports(client_ports)}]
    if metrics_ports:
        scrapers = _namespaces(spec.metrics_namespaces) or [{"namespaceSelector": {}}]
        ingress.append({"from": scrapers, "ports": _ports(metrics_ports)})
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ais.metadata.namespace, "labels": common_labels(ais, component)},
            "spec": {
                "podSelector": {"matchLabels": selector_labels(ais, component)},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        }
    ]
