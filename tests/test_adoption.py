"""An object that already holds a child's name is taken over only when aifleet made it."""

from __future__ import annotations

import copy

from aifleet.api import AIService
from aifleet.reconciler.adoption import adoption_refusal
from aifleet.reconciler.observed import AppliedCache
from aifleet.reconciler.sync import apply_children, refused_states
from aifleet.renderer import render
from aifleet.renderer.component import ComponentState

UID = "0b7c4c4e-1111-2222-3333-444455556666"


def _service(minimal) -> dict:
    doc = copy.deepcopy(minimal)
    doc["metadata"].update(uid=UID, namespace="ml")
    return next(m for m in render(AIService.model_validate(doc)) if m["kind"] == "Service")


def _live(labels=None, owners=None) -> dict:
    meta = {"name": "sentiment-triton", "namespace": "ml", "labels": labels or {}}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"kind": "Service", "metadata": meta, "spec": {"ports": [{"port": 80}]}}


def _owner(uid, kind="AIService", name="sentiment") -> dict:
    return {"apiVersion": "aifleet.dev/v1alpha1", "kind": kind, "name": name, "uid": uid, "controller": True}


def test_an_object_someone_else_made_is_not_adopted(minimal):
    desired = _service(minimal)
    refusal = adoption_refusal(_live({"app": "legacy"}), desired)
    assert refusal == "Service sentiment-triton already exists and aifleet did not create it: not adopted; delete or rename it"


def test_an_object_another_controller_owns_is_not_adopted_even_with_our_labels(minimal):
    desired = _service(minimal)
    live = _live(desired["metadata"]["labels"], [_owner("other", kind="HelmRelease", name="legacy")])
    assert adoption_refusal(live, desired) == (
        "Service sentiment-triton already exists and is controlled by HelmRelease legacy: not adopted"
    )


def test_labels_of_another_aiservice_are_not_enough(minimal):
    desired = _service(minimal)
    labels = {**desired["metadata"]["labels"], "app.kubernetes.io/instance": "someone-else"}
    assert adoption_refusal(_live(labels), desired) is not None


def test_what_aifleet_made_is_taken_over(minimal):
    desired = _service(minimal)
    assert adoption_refusal(_live({}, [_owner(UID)]), desired) is None  # ours, the watch just had not shown it
    # Left by an earlier AIService of this name (orphaned on delete): our labels, no controller.
    assert adoption_refusal(_live(desired["metadata"]["labels"], []), desired) is None


class _Kube:
    """Answers lookups from `objects` and records applies (the reconcile's edges, without an API server)."""

    def __init__(self, objects):
        self.objects = objects
        self.applied: list[dict] = []

    def find(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def apply(self, manifest):
        self.applied.append(manifest)
        return {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": "1"}}


def test_apply_leaves_a_foreign_object_alone_and_says_which(minimal):
    desired = _service(minimal)
    kube = _Kube({("Service", "ml", "sentiment-triton"): _live({"app": "legacy"})})
    events: list[tuple[str, str, str]] = []
    done, created, refused = apply_children([desired], lambda *key: None, kube, AppliedCache(), lambda *e: events.append(e))
    assert kube.applied == [] and done == [] and created == []
    assert refused == {"triton": "Service sentiment-triton already exists and aifleet did not create it: not adopted; delete or rename it"}
    states = refused_states({"inference": ComponentState("Progressing", "0/1 pods available", False)}, refused)
    assert states == {"inference": ComponentState("Degraded", refused["triton"], False)}


def test_apply_creates_when_nothing_holds_the_name(minimal):
    desired = _service(minimal)
    kube = _Kube({})
    done, created, refused = apply_children([desired], lambda *key: None, kube, AppliedCache(), lambda *e: None)
    assert kube.applied == [desired] and done == created == ["Service/sentiment-triton"] and refused == {}
