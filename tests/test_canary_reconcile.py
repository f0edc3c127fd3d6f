"""A canary through whole reconcile passes, against an in-memory store of objects (a unit test: the real API
server and real pods are e2e/test_real_canary.py's)."""

from __future__ import annotations

import copy
import time
from typing import Any

import yaml

from aifleet.autoscaler.sample import Sample
from aifleet.reconciler.canary import analyser
from aifleet.reconciler.observed import AppliedCache
from aifleet.reconciler.sync import reconcile
from conftest import EXAMPLES

NS, NAME = "default", "sentiment"
STABLE, CANARY = "sentiment-triton", "sentiment-triton-canary"


class Store:
    """Objects by (kind, namespace, name), with the few API calls a reconcile makes."""

    def __init__(self, aiservice: dict[str, Any]) -> None:
        self.version = 0
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.deleted: list[str] = []
        self._put({**aiservice, "status": {}})

    def _put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        meta = obj["metadata"]
        meta.setdefault("namespace", NS)
        meta["resourceVersion"] = str(self.version)
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        old = self.objects.get((manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"]))
        obj = copy.deepcopy(manifest)
        obj["metadata"]["generation"] = (old or {}).get("metadata", {}).get("generation", 0) + 1
        obj["status"] = (old or {}).get("status", {})
        return self._put(obj)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.apply(manifest)

    def delete(self, kind: str, namespace: str, name: str, *, orphan: bool = False) -> None:
        self.objects.pop((kind, namespace, name))
        self.deleted.append(f"{kind}/{name}")

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.lookup(kind, namespace, name)

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.lookup(kind, namespace, name)  # every object here is one the reconciles made

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        return []

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        body = self.objects[("AIService", namespace, name)]
        body["status"] = _merge(body.get("status") or {}, patch)
        return self._put(body)

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        obj = self.objects[(kind, namespace, name)]
        obj["spec"]["replicas"] = replicas
        return self._put(obj)

    def all_ready(self) -> None:
        """The kubelet's part: every Deployment's pods ready for its current spec."""
        for (kind, _, _), obj in self.objects.items():
            if kind == "Deployment":
                wanted = obj["spec"]["replicas"]
                obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": wanted,
                                 "readyReplicas": wanted, "availableReplicas": wanted, "updatedReplicas": wanted}

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(("Deployment", NS, name))


def _merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(old)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class Source:
    def __init__(self, success: float, failure: float) -> None:
        self.success, self.failure = success, failure

    def query(self, promql: str) -> Sample:
        if promql.startswith("100 *"):
            return Sample.of(25.0)
        if "summary" in promql:
            return Sample.of(12.0)
        return Sample.of(self.failure if "failure" in promql else self.success)

    def query_many(self, promql: str, key_labels: Any = ()) -> Any:
        raise AssertionError(promql)


def _setup() -> tuple[Store, AppliedCache, list[tuple[str, str, str]]]:
    doc = yaml.safe_load((EXAMPLES / "canary.yaml").read_text())
    doc["metadata"].update(uid="0000-1111", generation=1)
    return Store(doc), AppliedCache(), []


def _pass(
    store: Store,
    applied: AppliedCache,
    events: list,
    source: Source | None = None,
    later: float = 0.0,
    gateway_api: bool = False,
) -> None:
    analyse = None if source is None else analyser(lambda _, s=source: s, time.time() + later)
    reconcile(copy.deepcopy(store.objects[("AIService", NS, NAME)]), store.lookup, store, applied,
              lambda *e: events.append(e), analyse=analyse, gateway_api=gateway_api)


def _image(deployment: dict[str, Any] | None) -> str:
    assert deployment is not None
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def _status(store: Store) -> dict[str, Any]:
    return store.objects[("AIService", NS, NAME)]["status"]


def test_a_failing_canary_is_split_off_judged_and_removed():
    store, applied, events = _setup()
    _pass(store, applied, events)
    stable, canary = store.deployment(STABLE), store.deployment(CANARY)
    assert stable and canary and (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (3, 1)
    assert _status(store)["canary"]["phase"] == "Watching" and "windowStart" not in _status(store)["canary"]
    assert [e[1] for e in events if e[1].startswith("Canary")] == ["CanaryStarted"]

    store.all_ready()
    _pass(store, applied, events)
    assert _status(store)["canary"]["windowStart"]  # the window opened with the pods ready

    _pass(store, applied, events, Source(success=80, failure=20), later=30)
    assert _status(store)["canary"]["phase"] == "RolledBack"
    assert store.deployment(CANARY) is None and "Deployment/sentiment-triton-canary" in store.deleted
    assert store.deployment(STABLE)["spec"]["replicas"] == 4
    assert _image(store.deployment(STABLE)).endswith(":24.08-py3")
    healthy = next(c for c in _status(store)["conditions"] if c["type"] == "CanaryHealthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "RolledBack")
    rolled_back = [e for e in events if e[1] == "CanaryRolledBack"]
    assert rolled_back and rolled_back[0][0] == "Warning" and "failure ratio 0.200" in rolled_back[0][2]

    # Later passes keep it rolled back: the same canary spec is not tried again.
    _pass(store, applied, events, Source(success=1000, failure=0), later=1000)
    assert store.deployment(CANARY) is None and _status(store)["canary"]["phase"] == "RolledBack"


def test_a_healthy_canary_steps_then_is_promoted_onto_the_stable_deployment():
    store, applied, events = _setup()
    _pass(store, applied, events)
    store.all_ready()
    _pass(store, applied, events)
    _pass(store, applied, events, Source(success=1000, failure=0), later=1000)
    status = _status(store)["canary"]
    assert (status["phase"], status["share"], status["step"]) == ("Watching", 50, 1)
    assert (store.deployment(STABLE)["spec"]["replicas"], store.deployment(CANARY)["spec"]["replicas"]) == (2, 2)
    assert status["canary"]["observedShare"] == 25.0 and status["stable"]["observedShare"] == 75.0

    store.all_ready()
    _pass(store, applied, events)
    _pass(store, applied, events, Source(success=2000, failure=0), later=1000)
    assert _status(store)["canary"]["phase"] == "Promoted"
    assert store.deployment(CANARY) is None
    assert _image(store.deployment(STABLE)).endswith(":24.09-py3")
    assert store.deployment(STABLE)["spec"]["replicas"] == 4
    story = [e[1] for e in events if e[1].startswith("Canary")]
    assert story == ["CanaryStarted", "CanaryStepped", "CanaryPromoted"]


def test_with_the_gateway_api_the_route_and_version_services_come_and_go_with_the_canary():
    store, applied, events = _setup()
    _pass(store, applied, events, gateway_api=True)
    route = store.objects[("HTTPRoute", NS, STABLE)]
    weights = [ref["weight"] for ref in route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [75, 25]
    assert {("Service", NS, f"{STABLE}-stable"), ("Service", NS, CANARY)} <= store.objects.keys()

    store.all_ready()
    _pass(store, applied, events, gateway_api=True)
    _pass(store, applied, events, Source(success=80, failure=20), later=30, gateway_api=True)
    assert _status(store)["canary"]["phase"] == "RolledBack"
    gone = {"HTTPRoute/sentiment-triton", "Service/sentiment-triton-stable", "Service/sentiment-triton-canary"}
    assert gone <= set(store.deleted)
    assert [name for kind, _, name in store.objects if kind == "Service"] == [STABLE]


def test_a_route_the_watches_never_showed_is_deleted_when_the_canary_ends():
    # kopf watches HTTPRoute only once it notices the CRD: until then the route the operator made is not in the
    # watch cache, and the pass that ends the canary must find it in the API.
    store, applied, events = _setup()
    _pass(store, applied, events, gateway_api=True)
    store.all_ready()
    _pass(store, applied, events, gateway_api=True)

    def unwatched(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None if kind == "HTTPRoute" else store.lookup(kind, namespace, name)

    body = store.objects[("AIService", NS, NAME)]
    body["spec"]["inference"]["canary"]["trafficPercent"] = 0
    body["metadata"]["generation"] = 2
    reconcile(copy.deepcopy(body), unwatched, store, applied, lambda *e: events.append(e), gateway_api=True)
    assert "HTTPRoute/sentiment-triton" in store.deleted
    assert ("HTTPRoute", NS, STABLE) not in store.objects
    # Once the status says the canary is over, later passes look in the watches only.
    store.find = lambda *a: (_ for _ in ()).throw(AssertionError("looked up in the API again"))  # type: ignore[method-assign]
    reconcile(copy.deepcopy(store.objects[("AIService", NS, NAME)]), unwatched, store, applied,
              lambda *e: events.append(e), gateway_api=True)


def test_an_object_of_a_canary_childs_name_that_this_aiservice_does_not_own_is_left_alone():
    store, applied, events = _setup()
    _pass(store, applied, events, gateway_api=True)
    store.all_ready()
    _pass(store, applied, events, gateway_api=True)
    route = store.objects[("HTTPRoute", NS, STABLE)]
    route["metadata"]["ownerReferences"] = [{"kind": "Gateway", "name": "other", "uid": "someone-else"}]

    def unwatched(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None if kind == "HTTPRoute" else store.lookup(kind, namespace, name)

    body = store.objects[("AIService", NS, NAME)]
    body["spec"]["inference"]["canary"]["trafficPercent"] = 0
    reconcile(copy.deepcopy(body), unwatched, store, applied, lambda *e: events.append(e), gateway_api=True)
    assert ("HTTPRoute", NS, STABLE) in store.objects and "Service/sentiment-triton-canary" in store.deleted
