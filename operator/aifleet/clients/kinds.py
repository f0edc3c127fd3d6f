"""Where each kind the operator manages lives in the Kubernetes REST API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


# The children an AIService can own (`api.children.APPLY_ORDER` names them in the order they are applied).
CHILD_KINDS: tuple[Kind, ...] = (
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("Service", "", "v1", "services"),
    Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("StatefulSet", "apps", "v1", "statefulsets"),
    Kind("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets"),
    Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers"),
    # The Gateway API's route, rendered only where the API server serves it (kopf watches it once it exists).
    Kind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes"),
)
BY_KIND = {k.kind: k for k in CHILD_KINDS}
HTTPROUTE = BY_KIND["HTTPRoute"]
AISERVICE = Kind("AIService", "aifleet.dev", "v1alpha1", "aiservices")


def kind_of(manifest: dict) -> Kind:
    return BY_KIND[manifest["kind"]]

