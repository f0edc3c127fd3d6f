"""One reconcile of one AIService: render, compare with what the watches saw, apply the difference,
report status. Everything here is plain functions; kopf only calls `reconcile`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api import KIND, AIService
from ..api.canary import CanaryStatus
from ..api.children import COMPONENT_LABEL, TRITON, label_selector, names
from ..api.dbcheck import CheckTarget, DatabaseCheck
from ..api.errors import describe_validation_error
from ..api.timestamps import now_timestamp, parse_timestamp
from ..autoscaler.policy import Decision
from ..clients.kube import Kube, KubeError, UnreachableError
from ..observability import metrics
from ..renderer import CONFIG_HASH, Rendered, render_all, secret_names
from ..renderer.component import DISABLED, ComponentState, Lookup, Observed, PodLister, Rendering
from ..renderer.components import COMPONENTS
from ..renderer.inference import versions
from ..renderer.pgbouncer import check_target
from ..topics.apply import TopicsResult, owned_topics
from .adoption import adoption_refusal, owned_by
from .canary import Analyse, canary_ready, fleet_total, rollout
from .canary import report as canary_report
from .conditions import component_condition, merge_conditions, summary_conditions
from .diff import DriftMemo
from .observed import AppliedCache
from .scaling import hpa_status, operator_status

log = logging.getLogger("aifleet.reconciler")

Emit = Callable[[str, str, str], None]  # (type, reason, message) -> recorded as a Kubernetes Event
# (the AIService, where its pooler's database check logs in, None: nowhere) -> the last result (reconciler/dbchecks.py)
DatabaseCheckSource = Callable[[AIService, CheckTarget | None], DatabaseCheck | None]


@dataclass
class Outcome:
    """What one reconcile did, for logs and tests."""

    applied: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # of `applied`, the children that did not exist
    # component -> why a child is not there: an object in its way (see adoption.py) or the API server refused it
    refused: dict[str, str] = field(default_factory=dict)
    status_written: bool = False
    error: str | None = None
    waiting_on_user: bool = False  # e.g. a referenced Secret is missing: we do not watch user Secrets, so re-check soon
    ready: bool | None = None  # the Ready condition of the status this pass reported (None: it reported none)
    # Every component Ready (or not wanted): nothing this pass saw is still moving, so nothing but a watch event or
    # a new decision can change the status before the resync (see passes.run_pass's `poll_only`).
    settled: bool = False


def parse(body: dict[str, Any]) -> AIService | None:
    try:
        return AIService.model_validate(body)
    except ValidationError:
        return None


class ParsedCache:
    """The AIService model of each object, kept while its resourceVersion stands: an object of one version never
    changes, and a quiet fleet is parsed again on every poll otherwise. One slot per AIService; models are shared,
    so nothing may mutate them (they are treated as values throughout)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], tuple[tuple[str, str], AIService | None]] = {}

    def parse(self, body: dict[str, Any]) -> AIService | None:
        meta = body.get("metadata") or {}
        slot = (meta.get("namespace", ""), meta.get("name", ""))
        version = (str(meta.get("uid", "")), str(meta.get("resourceVersion", "")))
        if not version[1]:  # not from the API server (tests, offline): nothing to key on
            return parse(body)
        known = self._slots.get(slot)
        if known is not None and known[0] == version:
            return known[1]
        ais = parse(body)
        self._slots[slot] = (version, ais)
        return ais

    def forget(self, namespace: str, name: str) -> None:
        self._slots.pop((namespace, name), None)


# --- writing children ----------------------------------------------------------------------------------


def _change_event(manifest: dict[str, Any], live: dict[str, Any] | None, reason: str) -> tuple[str, str]:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    if live is None:
        return "Created", f"created {kind} {name}"
    wanted = manifest["metadata"]["annotations"][CONFIG_HASH]
    had = (live.get("metadata", {}).get("annotations") or {}).get(CONFIG_HASH)
    if had != wanted:
        return "Updated", f"updated {kind} {name} to the new spec ({reason} changed)"
    return "DriftReverted", f"reverted {kind} {name}: {reason} was changed outside aifleet"


def _immutable_change(exc: KubeError, manifest: dict[str, Any]) -> bool:
    # A StatefulSet's volume claim templates cannot change in place (e.g. Redis persistence turned on).
    return manifest["kind"] == "StatefulSet" and exc.status == 422 and "Forbidden" in str(exc)


_DRIFT = DriftMemo()


def apply_children(
    desired: list[dict[str, Any]], lookup: Lookup, kube: Kube, applied: AppliedCache, emit: Emit,
    generated: list[str] | None = None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """Apply only what is missing or drifted. A resync where nothing changed sends nothing. Returns what was
    applied, what of it was created, and per component the objects of a child's name that were not adopted.

    One event per kind of change per pass ("created Deployment a, Service a"), not one per child: at fleet scale
    events are a large share of the writes, and one line reads better in `kubectl describe` anyway.
    """
    done: list[str] = []
    created: list[str] = []
    refused: dict[str, list[str]] = {}
    said: dict[str, list[str]] = {}
    for manifest in desired:
        kind, meta = manifest["kind"], manifest["metadata"]
        live = applied.newest(kind, meta["namespace"], meta["name"], lookup(kind, meta["namespace"], meta["name"]))
        if live is None:
            # The watches see only our labelled children: an object of this name made by someone else is
            # invisible to them, and a forced apply would take it over.
            live = kube.find(kind, meta["namespace"], meta["name"])
            refusal = adoption_refusal(live, manifest) if live is not None else None
            if refusal is not None:
                refused.setdefault(meta["labels"][COMPONENT_LABEL], []).append(refusal)
                continue
        reason = _DRIFT(manifest, live)
        if reason is None:
            continue
        try:
            result = kube.apply(manifest)
        except KubeError as exc:
            if _immutable_change(exc, manifest):
                # Replace the object, keeping its pods and volumes: they are adopted by the new one.
                kube.delete(kind, meta["namespace"], meta["name"], orphan=True)
                result = kube.apply(manifest)
                said.setdefault("Recreated", []).append(
                    f"recreated {kind} {meta['name']} to change a field Kubernetes keeps immutable (pods and volumes kept)"
                )
            elif exc.refused:
                # Sending it again changes nothing: the component says why, the other children still go on.
                refused.setdefault(meta["labels"][COMPONENT_LABEL], []).append(refusal_message(kind, meta["name"], exc))
                log.info("child refused", extra={"kind": kind, "child": meta["name"], "status": exc.status,
                                                    "error": str(exc)})
                continue
            else:
                raise
        applied.remember(result)
        event_reason, message = _change_event(manifest, live, reason)
        said.setdefault(event_reason, []).append(message)
        log.info("applied child", extra={"kind": kind, "child": meta["name"], "why": reason})
        done.append(f"{kind}/{meta['name']}")
        if live is None:
            created.append(done[-1])
    if generated:  # the Secrets this pass generated join its "created" event: one event per new AIService
        said.setdefault("Created", [])
    for event_reason, messages in said.items():
        extra = generated if event_reason == "Created" and generated else []
        emit("Normal", event_reason, "; ".join(filter(None, [_join_messages(messages) if messages else "", *extra])))
    return done, created, {component: "; ".join(messages) for component, messages in refused.items()}


def refusal_message(kind: str, name: str, exc: KubeError) -> str:
    """"the API server refused Deployment chat: spec.replicas: Invalid value: -1: must be greater than or equal
    to 0": the child, then each field the Status names with its message (its overall message if it names none)."""
    fields = [f"{c.field}: {c.message}" if c.field else c.message for c in exc.causes if c.field or c.message]
    return f"the API server refused {kind} {name}: {'; '.join(fields) or exc}"


def _join_messages(messages: list[str]) -> str:
    """"created Deployment a", "created Service a" -> "created Deployment a, Service a"."""
    verb = messages[0].split(" ", 1)[0]
    if all(m.startswith(verb + " ") and ":" not in m and "(" not in m for m in messages):
        return verb + " " + ", ".join(m.split(" ", 1)[1] for m in messages)
    return "; ".join(messages)


def create_generated(
    manifests: list[dict[str, Any]], lookup: Lookup, kube: Kube, applied: AppliedCache
) -> tuple[bool, list[str]]:
    """Generated Secrets are created once and never updated: a password must not rotate by accident. Returns
    whether one was created (what waits for it is rendered by the next pass) and what to say of it."""
    made, said = False, []
    for manifest in manifests:
        meta = manifest["metadata"]
        if applied.newest(manifest["kind"], meta["namespace"], meta["name"], lookup(manifest["kind"], meta["namespace"], meta["name"])):
            continue
        created = kube.create(manifest)
        made = True  # created now, or by an earlier pass whose answer was lost: either way it exists
        if created is not None:
            applied.remember(created)
            said.append(f"generated Secret {meta['name']} (a random key, kept until deleted)")
    return made, said


def read_secrets(ais: AIService, lookup: Lookup, kube: Kube) -> dict[str, dict[str, Any] | None]:
    """The Secrets the spec references: ours from the watch cache, the user's from the API (read-only)."""
    ns = ais.metadata.namespace
    return {name: lookup("Secret", ns, name) or kube.get("Secret", ns, name) for name in secret_names(ais)}


# --- status -------------------------------------------------------------------------------------------


def endpoints(ais: AIService, observed: Observed) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for component in COMPONENTS:
        if component.wanted(ais):
            out.update(component.endpoints(ais, observed))
    return out


def component_states(
    ais: AIService, lookup: Lookup, rendered: Rendered, topics: TopicsResult | None,
    pods: PodLister | None = None, now: float | None = None, database: DatabaseCheck | None = None,
) -> dict[str, ComponentState]:
    observed = Observed(lookup, topics, pods, now, database)
    return {
        c.status_key: c.state(ais, observed, rendered.parts.get(c.name, Rendering())) if c.wanted(ais) else DISABLED
        for c in COMPONENTS
    }


def refused_states(states: Mapping[str, ComponentState], refused: Mapping[str, str]) -> dict[str, ComponentState]:
    """Components with a child refused (an object in its way, or the API server said no) are Degraded, naming it
    and why (and a Warning event says so)."""
    keys = {c.name: c.status_key for c in COMPONENTS}
    return {
        keys[component]: ComponentState("Degraded", message, states[keys[component]].serving)
        for component, message in refused.items()
    }


def pod_lister(kube: Kube) -> PodLister:
    """Pods for the failure report; an API error only leaves the report out (the counts still stand)."""

    def pods(namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        try:
            return kube.list_pods(namespace, selector)
        except KubeError as exc:
            if not isinstance(exc, UnreachableError):  # an outage is said once, by Reachability
                log.warning("cannot list pods to say why they fail", extra={"namespace": namespace, "error": str(exc)})
            return []

    return pods


def scaling_report(ais: AIService, lookup: Lookup, decision: Decision | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if ais.spec.autoscaling.engine == "hpa":
        return hpa_status(lookup("HorizontalPodAutoscaler", ais.metadata.namespace, names(ais).triton))
    return operator_status(decision)


def build_status(
    ais: AIService,
    lookup: Lookup,
    previous: Mapping[str, Any],
    now: str,
    states: dict[str, ComponentState],
    decision: Decision | None = None,
    topics: TopicsResult | None = None,
    canary: CanaryStatus | None = None,
) -> dict[str, Any]:
    """The status block, computed purely from the spec, the component states, the observed children and the
    engines' last results (the autoscaler's decision, the topic sync, the canary's rollout)."""
    deployment = lookup("Deployment", ais.metadata.namespace, names(ais).triton)
    scaling_fields, scaling_conditions = scaling_report(ais, lookup, decision)
    canary_status, canary_conditions = canary_report(ais, canary, lookup)
    conditions = (
        summary_conditions(states, None)
        + [component_condition(n, s) for n, s in states.items() if s.state != "Disabled"]
        + scaling_conditions
        + canary_conditions
    )
    running = versions(ais, canary, 0)[2] is not None  # a canary on its way out no longer counts
    parts = [deployment, lookup("Deployment", ais.metadata.namespace, names(ais).triton_canary) if running else None]
    pods = [(d.get("status", {}) or {}) for d in parts if d]
    status = {
        "observedGeneration": ais.metadata.generation,
        "conditions": merge_conditions(previous.get("conditions"), conditions, now, ais.metadata.generation),
        "replicas": sum(p.get("replicas", 0) or 0 for p in pods),
        "readyReplicas": sum(p.get("readyReplicas", 0) or 0 for p in pods),
        "selector": label_selector(ais, TRITON),
        "endpoints": endpoints(ais, Observed(lookup, topics)),
        "components": {n: {"state": s.state, "message": s.message} for n, s in states.items()},
        "canary": canary_status,
    }
    if topics is not None:
        status["createdTopics"] = owned_topics(previous.get("createdTopics"), topics)
    if deployment is not None:
        status["desiredReplicas"] = sum((d.get("spec") or {}).get("replicas", 0) for d in parts if d)
    status.update(scaling_fields)
    return status


def canary_children(ais: AIService) -> tuple[tuple[str, str], ...]:
    """(kind, name) of the children that exist only while a canary runs: its Deployment, and, where the Gateway
    API is served, the Service per version and the HTTPRoute between them."""
    children = names(ais)
    return (
        ("Deployment", children.triton_canary),
        ("Service", children.triton_stable),
        ("Service", children.triton_canary),
        ("HTTPRoute", children.triton),
    )


def remove_canary(
    ais: AIService, manifests: list[dict[str, Any]], lookup: Lookup, kube: Kube, applied: AppliedCache,
    ended: bool = False,
) -> None:
    """Delete the canary's children once they are no longer rendered (rolled back, promoted or ended): the
    children that go away while their AIService stays.

    `ended`: the canary ends on this pass (the status still records it). Its children are then also looked for in
    the API, not only in the watches, which may not hold them: kopf starts watching HTTPRoute only once it notices
    the CRD, and a route made before that was otherwise left behind. Only what this AIService owns is deleted."""
    ns = ais.metadata.namespace
    rendered = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for kind, name in canary_children(ais):
        if (kind, name) in rendered:
            continue
        live = lookup(kind, ns, name)
        if live is None and ended:
            found = _find(kube, kind, ns, name)
            live = found if owned_by(found, {ais.metadata.uid}) else None
        if live is None or live.get("metadata", {}).get("deletionTimestamp"):
            continue
        try:
            kube.delete(kind, ns, name)
        except KubeError as exc:
            if exc.status != 404:
                raise
        applied.forget(kind, ns, name)


def _find(kube: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.find(kind, namespace, name)
    except KubeError as exc:
        if exc.status == 404:  # the kind is not served (the Gateway API is not installed)
            return None
        raise


def is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def record_fleet(ais: AIService, status: Mapping[str, Any], lookup: Lookup) -> None:
    """The AIService's readiness, fleet size and bounds as the operator's per-AIService gauges."""
    scaling = ais.spec.autoscaling
    deployment = lookup("Deployment", ais.metadata.namespace, names(ais).triton) or {}
    ready = is_ready(status)
    metrics.record_fleet(
        ais.metadata.namespace, ais.metadata.name, ready=ready,
        replicas=(deployment.get("spec") or {}).get("replicas") or 0,
        ready_replicas=status.get("readyReplicas") or 0, min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas, target_rps_per_pod=scaling.target_rps_per_pod,
    )


def last_status(body: dict[str, Any], applied: AppliedCache) -> dict[str, Any]:
    """The AIService's status as of our last write, if the watch has not delivered that write yet: comparing
    with the older copy would send the same patch again."""
    meta = body.get("metadata", {})
    newest = applied.newest(KIND, meta.get("namespace", ""), meta.get("name", ""), body)
    return dict((newest or {}).get("status") or {})


def write_status(kube: Kube, applied: AppliedCache, namespace: str, name: str, patch: dict[str, Any]) -> None:
    written = kube.patch_status(namespace, name, patch)
    if written:
        applied.remember({**written, "kind": KIND})


def _changed(previous: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch (RFC 7386) that makes `previous` read as `new` for every key of `new`; empty when quiet.

    A merge patch keeps the keys it does not name, so a key gone from a nested block (`autoscaling.lastMetricError`
    once the metrics are back) is sent as null: otherwise the stored block keeps it, never equals the report, and
    every pass sends the same patch again."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        old = previous.get(key)
        if old != value:
            patch[key] = _merge_patch(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return patch


def _merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    patch.update(_changed(old, new))
    return patch


def invalid_status(body: dict[str, Any], message: str, now: str) -> dict[str, Any]:
    previous = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    return {
        "observedGeneration": generation,
        "conditions": merge_conditions(previous.get("conditions"), summary_conditions({}, message), now, generation),
    }


def _report_problems(ais: AIService, previous: Mapping[str, Any], states: dict[str, ComponentState], emit: Emit) -> None:
    """A Warning event when a component turns Degraded or its reason changes, and a Normal one when a component
    says it recovered; not on every pass."""
    before = previous.get("components") or {}
    for name, state in states.items():
        if state.state == "Degraded" and (before.get(name) or {}).get("message") != state.message and name != "topics":
            emit("Warning", f"{name.capitalize()}Degraded", state.message)
    for component in COMPONENTS:
        old, now = before.get(component.status_key) or {}, states.get(component.status_key)
        if old.get("state") == "Degraded" and now is not None and now.state != "Degraded":
            words = component.recovered(ais, ComponentState("Degraded", str(old.get("message") or ""), False), now)
            if words:
                emit("Normal", f"{component.status_key.capitalize()}Recovered", words)


# --- the reconcile ------------------------------------------------------------------------------------


def reconcile(
    body: dict[str, Any],
    lookup: Lookup,
    kube: Kube,
    applied: AppliedCache,
    emit: Emit,
    decision: Decision | None = None,
    topics: Callable[[AIService, dict[str, Any] | None], TopicsResult | None] | None = None,
    analyse: Analyse | None = None,
    *,
    gateway_api: bool = False,
    parsed: AIService | None = None,
    pods: PodLister | None = None,
    database: DatabaseCheckSource | None = None,
) -> Outcome:
    """`parsed`: `body` as a model, when the caller has it already (None: parse here, and say why it fails).
    `pods`: how to read pods for the failure report (default: a list per call)."""
    outcome = Outcome()
    previous = last_status(body, applied)
    now = now_timestamp()
    try:
        ais = parsed if parsed is not None else AIService.model_validate(body)
    except ValidationError as exc:
        # The CRD refuses most bad specs; this catches what only Python can check. Change nothing.
        message = describe_validation_error(exc)
        patch = _changed(previous, invalid_status(body, message, now))
        if patch:
            emit("Warning", "InvalidSpec", message)
            write_status(kube, applied, body["metadata"]["namespace"], body["metadata"]["name"], patch)
            outcome.status_written = True
        outcome.error = message
        return outcome

    secrets = read_secrets(ais, lookup, kube)
    ns = ais.metadata.namespace
    canary = rollout(ais, previous, parse_timestamp(now), analyse, emit, canary_ready(ais, lookup))
    replicas = fleet_total(ais, canary, lambda name: applied.newest("Deployment", ns, name, lookup("Deployment", ns, name)))
    rendered = render_all(ais, replicas=replicas, secrets=secrets, canary=canary, gateway_api=gateway_api)
    generated, generated_said = create_generated(rendered.create_once, lookup, kube, applied)
    try:
        outcome.applied, outcome.created, outcome.refused = apply_children(
            rendered.manifests, lookup, kube, applied, emit, generated_said)
    except KubeError as exc:
        outcome.error = f"apply failed: {exc}"
        if not isinstance(exc, UnreachableError):  # an outage is said once for the process, not per object
            emit("Warning", "ApplyFailed", outcome.error)
        raise
    # The last status showed the canary's pods (`status.canary.canary`) and this pass renders none: it ends now.
    ended = bool((previous.get("canary") or {}).get("canary")) and versions(ais, canary, 0)[2] is None
    remove_canary(ais, rendered.manifests, lookup, kube, applied, ended=ended)
    # A missing user Secret, an object in a child's way, a policy refusing a child: we do not watch those, so look again soon.
    # A Secret generated now: what uses it is rendered by the next pass, which its watch event brings only when
    # Secrets are watched (`--secret-access watch`).
    outcome.waiting_on_user = bool(rendered.problems or outcome.refused or generated)

    if outcome.created:
        # The rollout's state is written even so: it must outlive this process (see reconciler/canary.py).
        patch = _changed(previous, {"canary": canary.to_wire() if canary else None})
        if patch:
            write_status(kube, applied, ns, ais.metadata.name, patch)
        # Their ADDED events arrive at once and bring the next pass, which reports the children as they are. A
        # status written now would describe children this pass has not seen, to be replaced a moment later:
        # while a fleet of services is created, that is one write per service the API server can do without.
        return outcome

    kafka_secret = secrets.get(ais.spec.kafka.credentials_secret) if ais.spec.kafka and ais.spec.kafka.credentials_secret else None
    topic_result = topics(ais, kafka_secret) if topics is not None else None
    # The check itself runs on its own cadence, never in this pass; without a pooler this is one dict lookup.
    checked = database(ais, check_target(ais, lookup, secrets)) if database is not None else None
    states = component_states(ais, lookup, rendered, topic_result, pods or pod_lister(kube), parse_timestamp(now),
                              checked)
    states.update(refused_states(states, outcome.refused))
    status = build_status(ais, lookup, previous, now, states, decision, topic_result, canary)
    record_fleet(ais, status, lookup)
    outcome.ready = is_ready(status)
    outcome.settled = all(state.state in ("Ready", "Disabled") for state in states.values())
    _report_problems(ais, previous, states, emit)
    patch = _changed(previous, status)
    if patch:
        write_status(kube, applied, ais.metadata.namespace, ais.metadata.name, patch)
        outcome.status_written = True
    return outcome
