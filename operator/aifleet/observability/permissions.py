"""Every Kubernetes permission the operator uses, and why: one list for the preflight and for the chart.

The Helm chart's RBAC (charts/aifleet-operator/templates/rbac.yaml) grants exactly these rules; e2e/test_chart.py
renders the chart and asserts that the two agree, and the preflight asks the API server about each of them
(SelfSubjectAccessReview) before the operator starts. Change one, change the other.

Scopes:
* all namespaces (no ``--namespace``): the namespaced rules cluster-wide, plus CRD list/watch (kopf follows CRDs
  appearing and changing at runtime) and, with peering, ClusterKopfPeering.
* ``--namespace`` per namespace: the namespaced rules in each namespace only, and nothing cluster-scoped: kopf's
  runtime scanning of CRDs and namespaces is switched off in that mode (the preflight waits for the CRD instead),
  so the operator needs no ClusterRole at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Kinds the operator owns (see clients/kinds.py): kopf lists and watches each (index + event handlers). The
# kinds the renderer produces are server-side-applied too; an apply that creates the object is authorized as
# `create` as well as `patch` by the API server, so both are needed. tests/test_observability.py derives the
# rendered kinds from the renderer and checks this table against them.
APPLY = ("list", "watch", "create", "patch")
_CHILDREN = (
    ("", "serviceaccounts", APPLY, "watch the children it owns and server-side-apply them"),
    ("", "services", (*APPLY, "delete"),
     "server-side-apply; delete removes a canary's per-version Services once the canary ends"),
    ("networking.k8s.io", "networkpolicies", APPLY, "watch the children it owns and server-side-apply them"),
    ("apps", "deployments", (*APPLY, "delete"),
     "server-side-apply; delete removes a canary's Triton Deployment once it is rolled back, promoted or ended"),
    ("apps", "statefulsets", (*APPLY, "delete"),
     "server-side-apply; delete with propagation Orphan replaces a StatefulSet whose volumeClaimTemplates "
     "changed, keeping its pods and volumes"),
    ("policy", "poddisruptionbudgets", APPLY, "watch the children it owns and server-side-apply them"),
    ("autoscaling", "horizontalpodautoscalers", APPLY, "watch the children it owns and server-side-apply them"),
    ("gateway.networking.k8s.io", "httproutes", (*APPLY, "delete"),
     "where the Gateway API is installed: a canary's weighted HTTPRoute, deleted once the canary ends"),
)
PEERING_GROUP = "kopf.dev"


@dataclass(frozen=True)
class Rule:
    group: str
    resource: str  # plural, or "plural/subresource"
    verbs: tuple[str, ...]
    why: str
    cluster_scoped: bool = False

    @property
    def plural(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def subresource(self) -> str:
        return self.resource.split("/", 1)[1] if "/" in self.resource else ""


NAMESPACED_RULES: tuple[Rule, ...] = (
    Rule("aifleet.dev", "aiservices", ("list", "watch", "patch"),
         "watch AIServices; kopf adds and removes its finalizer and bookkeeping annotations"),
    Rule("aifleet.dev", "aiservices/status", ("patch",), "report status and conditions"),
    *(Rule(group, plural, verbs, why) for group, plural, verbs, why in _CHILDREN),
    Rule("", "pods", ("list",),
         "say why Triton pods that do not become available fail (crash, image, scheduling), by label selector"),
    Rule("apps", "deployments/scale", ("patch",), "the operator autoscaling engine sets Triton's replicas"),
    Rule("", "events", ("create",), "explain each decision in `kubectl describe aiservice`"),
)


# Secrets, two ways (`--secret-access`, the chart's `rbac.secretAccess`). Both create the generated Secrets and
# server-side-apply the config Secrets (create, patch) and read the ones a spec references (get).
#   byName (the default): no list, no watch. The operator reads each Secret it needs by name (cached for a while,
#     see reconciler/observed.py's SecretReader): its token cannot enumerate the cluster's Secrets, only read one
#     whose namespace and name it knows. A hand edit of a Secret aifleet manages is put back at the next read.
#   watch: list and watch as well, so kopf follows the Secrets aifleet labelled and puts back an edit at once; the
#     token can then list every Secret it may see (RBAC cannot limit a list to a label).
SECRET_ACCESS = ("byName", "watch")
SECRET_RULES = {
    "byName": Rule("", "secrets", ("get", "create", "patch"),
                   "create and apply generated Secrets (config, passwords) and read the Secrets a spec references, "
                   "each by name"),
    "watch": Rule("", "secrets", ("get", "list", "watch", "create", "patch"),
                  "watch and apply generated Secrets (config, passwords); read the user Secrets a spec references"),
}


def peering_rule(clusterwide: bool) -> Rule:
    if clusterwide:
        return Rule(PEERING_GROUP, "clusterkopfpeerings", ("list", "watch", "patch"),
                    "high availability: kopf peering keep-alives (--peering)", cluster_scoped=True)
    return Rule(PEERING_GROUP, "kopfpeerings", ("list", "watch", "patch"),
                "high availability: kopf peering keep-alives (--peering)")


NAMESPACES_RULE = Rule("", "namespaces", ("list", "watch"),
                       "kopf resolves namespace patterns (--namespace 'team-*') against the namespaces that exist",
                       cluster_scoped=True)


def is_pattern(namespace: str) -> bool:
    """kopf namespace patterns: globs, negations, comma lists ("team-*", "!kube-*", "a,b")."""
    return any(c in namespace for c in "*?!,[")


CRD_RULE = Rule("apiextensions.k8s.io", "customresourcedefinitions", ("list", "watch"),
                "kopf follows CRDs appearing and changing while it runs (all-namespaces mode only)",
                cluster_scoped=True)


def required_rules(*, clusterwide: bool, peering: bool, patterns: bool = False,
                   secret_access: str = "byName") -> list[Rule]:
    """The rules the operator needs in one scope: namespaced rules apply per watched namespace
    (or cluster-wide when ``clusterwide``), rules with ``cluster_scoped`` need a ClusterRole.
    ``patterns``: --namespace globs, which kopf resolves by listing namespaces (the chart takes exact names).
    ``secret_access``: see SECRET_RULES."""
    rules = [*NAMESPACED_RULES, SECRET_RULES[secret_access]]
    if clusterwide or patterns:
        rules.append(CRD_RULE)
    if patterns:
        rules.append(NAMESPACES_RULE)
    if peering:
        rules.append(peering_rule(clusterwide))
    return rules


@dataclass(frozen=True)
class Check:
    """One SelfSubjectAccessReview: a verb on a resource, in a namespace ("" = all namespaces / cluster)."""

    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    why: str

    def describe(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        if self.group:
            what = f"{what}.{self.group}"
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        return f"{self.verb} {what}{where}"


def checks(namespaces: Sequence[str], *, peering: bool, secret_access: str = "byName") -> list[Check]:
    """All (verb, resource, namespace) triples to verify for a watch scope: empty ``namespaces`` = all.
    With patterns among them the set of namespaces is open, so the namespaced rules are checked cluster-wide."""
    clusterwide = not namespaces
    patterns = any(is_pattern(n) for n in namespaces)
    out: list[Check] = []
    for rule in required_rules(clusterwide=clusterwide, peering=peering, patterns=patterns, secret_access=secret_access):
        scopes: Iterable[str] = [""] if (clusterwide or patterns or rule.cluster_scoped) else namespaces
        for namespace in scopes:
            for verb in rule.verbs:
                out.append(Check(verb, rule.group, rule.plural, rule.subresource, namespace, rule.why))
    return out


def as_rbac_rules(rules: Iterable[Rule]) -> list[dict]:
    """RBAC PolicyRules, one per Rule (what the chart renders), for comparisons in tests."""
    return [{"apiGroups": [r.group], "resources": [r.resource], "verbs": list(r.verbs)} for r in rules]


def summarize(missing: Sequence[Check]) -> str:
    """Missing checks grouped by resource and scope: "list,watch secrets in namespace a; patch ... cluster-wide"."""
    grouped: dict[tuple[str, str, str, str], list[str]] = {}
    for c in missing:
        grouped.setdefault((c.group, c.resource, c.subresource, c.namespace), []).append(c.verb)
    parts = []
    for (group, resource, subresource, namespace), verbs in grouped.items():
        parts.append(Check(",".join(verbs), group, resource, subresource, namespace, "").describe())
    return "; ".join(parts)
