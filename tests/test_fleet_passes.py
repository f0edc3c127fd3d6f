"""What keeps a fleet of a thousand AIServices cheap: passes wait their turn (the one someone waits on first), a
quiet poll skips the rest of the pass, and the pure steps are not repeated for inputs that did not change."""

from __future__ import annotations

import asyncio
import copy
import time

from aifleet.reconciler.diff import DriftMemo
from aifleet.reconciler.observed import PodReader
from aifleet.reconciler.sync import ParsedCache
from aifleet.reconciler.triggers import PassSlots, Trigger
from aifleet.renderer import CONFIG_HASH, render_all


def test_passes_take_turns_first_come_first_served_but_an_urgent_one_goes_first():
    async def scenario() -> list[str]:
        slots, order = PassSlots(1), []
        triggers = {name: Trigger() for name in "abcd"}

        async def one_pass(name: str) -> None:
            async with slots.turn(triggers[name]):
                order.append(name)
                await asyncio.sleep(0.01)

        first = asyncio.create_task(one_pass("a"))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(one_pass(n)) for n in "bcd"]
        await asyncio.sleep(0)
        assert slots.queued == 3
        triggers["d"].urgent = True  # its fleet just became available
        slots.promote(triggers["d"])
        await asyncio.gather(first, *waiting)
        return order

    assert asyncio.run(scenario()) == ["a", "d", "b", "c"]


def test_a_worker_stopped_while_it_waits_gives_up_its_place_and_no_turn_is_lost():
    async def scenario() -> int:
        slots = PassSlots(1)
        held, release = Trigger(), asyncio.Event()

        async def holder() -> None:
            async with slots.turn(held):
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0)
        stopped = asyncio.create_task(slots.turn(Trigger()).__aenter__())
        await asyncio.sleep(0)
        stopped.cancel()
        await asyncio.gather(stopped, return_exceptions=True)
        release.set()
        await task
        ran = 0
        for _ in range(3):  # the only slot is free again: three passes in a row get it at once
            async with slots.turn(Trigger()):
                ran += 1
        return ran + slots.queued

    assert asyncio.run(scenario()) == 3


def test_one_list_of_pods_per_namespace_serves_every_aiservice_of_it():
    lists: list[tuple[str, dict]] = []
    pods = [{"metadata": {"name": f"{owner}-triton-x", "labels": {"app": "triton", "instance": owner}}}
            for owner in ("a", "b")]
    reader = PodReader(lambda ns, sel: lists.append((ns, sel)) or pods, shared_label="instance", clock=lambda: 0.0)
    assert [p["metadata"]["name"] for p in reader.read("ml", {"app": "triton", "instance": "a"})] == ["a-triton-x"]
    assert [p["metadata"]["name"] for p in reader.read("ml", {"app": "triton", "instance": "b"})] == ["b-triton-x"]
    assert lists == [("ml", {"app": "triton"})]
    reader.read("other", {"app": "triton", "instance": "c"})
    assert len(lists) == 2


def test_pods_are_listed_again_once_the_shared_list_is_old():
    now = [0.0]
    lists: list[str] = []
    reader = PodReader(lambda ns, sel: lists.append(ns) or [], shared_label="instance", ttl=10, clock=lambda: now[0])
    reader.read("ml", {"instance": "a"})
    now[0] = 9.0
    reader.read("ml", {"instance": "a"})
    now[0] = 10.5
    reader.read("ml", {"instance": "a"})
    assert lists == ["ml", "ml"]


def _deployment(rv: str, image: str = "triton:1") -> dict:
    return {"kind": "Deployment", "metadata": {"namespace": "ml", "name": "chat", "uid": "u1", "resourceVersion": rv,
                                               "annotations": {CONFIG_HASH: "h1"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "t", "image": image}]}}}}


def test_drift_is_remembered_while_neither_side_changes_and_judged_again_when_one_does():
    memo = DriftMemo()
    desired = _deployment("0")
    assert memo(desired, _deployment("5")) is None
    assert memo(desired, _deployment("6", image="triton:2")) == ".spec.template.spec.containers[0].image"
    assert memo(desired, _deployment("6", image="triton:2")) == ".spec.template.spec.containers[0].image"
    assert memo(desired, None) == "missing"
    resized = copy.deepcopy(desired)
    resized["spec"]["replicas"] = 3  # a new replica count is a new rendering, even under the same config hash
    assert memo(resized, _deployment("5")) == ".spec.replicas"


def test_an_object_is_parsed_once_per_resource_version(minimal):
    cache = ParsedCache()
    minimal["metadata"].update(namespace="ml", name="chat", uid="u1", resourceVersion="10")
    first = cache.parse(minimal)
    assert first is not None and cache.parse(copy.deepcopy(minimal)) is first
    minimal["metadata"]["resourceVersion"] = "11"
    minimal["spec"]["autoscaling"]["maxReplicas"] = 7
    second = cache.parse(minimal)
    assert second is not first and second is not None and second.spec.autoscaling.max_replicas == 7


def test_the_same_model_renders_from_its_slot_and_a_new_spec_renders_anew(minimal):
    cache = ParsedCache()
    minimal["metadata"].update(namespace="ml", name="slot-test", uid="u1", resourceVersion="10")
    ais = cache.parse(minimal)
    assert ais is not None
    first = render_all(ais, replicas=1, secrets={})
    assert render_all(ais, replicas=1, secrets={}) is first
    same_spec = cache.parse({**minimal, "metadata": {**minimal["metadata"], "resourceVersion": "11"}})
    assert same_spec is not ais and render_all(same_spec, replicas=1, secrets={}) is first  # same input, same output
    assert render_all(ais, replicas=2, secrets={}) is not first


class _Cluster:
    """The API calls of a pass, answered from memory; a Deployment is available as soon as it is applied."""

    def __init__(self, aiservice: dict) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.version = 1
        self.aiservice = aiservice
        self.calls: list[str] = []

    def _stamp(self, obj: dict) -> dict:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        return obj

    def lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((kind, namespace, name))

    def apply(self, manifest: dict) -> dict:
        self.calls.append(f"apply {manifest['kind']}")
        obj = self._stamp(copy.deepcopy(manifest))
        if obj["kind"] == "Deployment":
            obj["status"] = {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
                             "conditions": [
                {"type": "Available", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        self.objects[(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    create = apply

    def find(self, kind: str, namespace: str, name: str) -> dict | None:
        return None

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.lookup(kind, namespace, name)

    def list_pods(self, namespace: str, selector: dict) -> list:
        return []

    def patch_status(self, namespace: str, name: str, patch: dict) -> dict:
        self.calls.append("patch status")
        status = self.aiservice.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            elif isinstance(value, dict) and isinstance(status.get(key), dict):
                status[key] = {k: v for k, v in {**status[key], **value}.items() if v is not None}
            else:
                status[key] = value
        self._stamp(self.aiservice)
        return copy.deepcopy(self.aiservice)


class _Prometheus:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def query_many(self, promql, key_labels=None):
        from aifleet.autoscaler.prometheus import Batch
        from aifleet.autoscaler.sample import Sample

        return Batch(samples={("ml", "chat"): Sample.of(50.0)})

    def query(self, promql):
        from aifleet.autoscaler.sample import Sample

        return Sample.of(50.0)


def _chat(minimal):
    """An AIService of the operator engine, its cluster in memory and the engines of one operator."""
    from aifleet.reconciler.passes import Engines
    from aifleet.reconciler.scaling import Autoscalers

    minimal["metadata"].update(namespace="ml", name="chat", uid="u1", resourceVersion="1", generation=1)
    minimal["spec"]["autoscaling"].update(engine="operator", minReplicas=1, maxReplicas=3, targetRPSPerPod=100,
                                          metrics={"address": "http://127.0.0.1:9"})
    minimal["spec"]["autoscaling"].pop("forecast", None)
    cluster = _Cluster(minimal)
    engines = Engines(kube=cluster, autoscalers=Autoscalers(source_factory=_Prometheus))  # type: ignore[arg-type]
    engines.discovery.serves = lambda kind: False  # type: ignore[method-assign]
    return cluster, engines


def test_a_quiet_poll_decides_and_skips_the_rest_of_the_pass(minimal):
    from aifleet.reconciler.passes import run_pass

    cluster, engines = _chat(minimal)
    rendered: list[int] = []
    lookup = cluster.lookup

    def counted(kind: str, namespace: str, name: str) -> dict | None:
        rendered.append(1)
        return lookup(kind, namespace, name)

    for _ in range(3):  # create the children, report them, settle
        run_pass(copy.deepcopy(minimal), lookup, engines, lambda *e: None, True)
    cluster.calls.clear()
    quiet = run_pass(copy.deepcopy(minimal), counted, engines, lambda *e: None, True, poll_only=True)
    assert quiet.polled and not quiet.reconciled and cluster.calls == []
    looked = len(rendered)  # the poll reads the fleet's Deployments, nothing else
    full = run_pass(copy.deepcopy(minimal), counted, engines, lambda *e: None, True)
    assert full.reconciled and len(rendered) > looked and cluster.calls == []  # a full quiet pass writes nothing too
    assert full.settled  # every component Ready: the worker may skip the rest of its next timer-only polls
    engines.autoscalers.memory("ml", "chat").shown = None  # as if the decision changed: the pass goes on
    changed = run_pass(copy.deepcopy(minimal), lookup, engines, lambda *e: None, True, poll_only=True)
    assert changed.reconciled


def test_range_queries_are_paced_for_the_whole_operator():
    from aifleet.autoscaler.batching import RateBudget

    now = [0.0]
    budget = RateBudget(per_second=2, burst=4, clock=lambda: now[0])
    assert [budget.take(2) for _ in range(3)] == [True, True, False]  # the burst is spent
    now[0] = 1.0
    assert budget.take(2) and not budget.take(1)  # two more a second


def test_a_forecast_without_budget_waits_for_a_later_poll(minimal):
    from aifleet.api import AIService
    from aifleet.autoscaler.batching import RateBudget
    from aifleet.autoscaler.state import AutoscalerState
    from aifleet.reconciler.scaling import read_history

    asked: list[str] = []

    class Source:
        def query_range(self, promql, span, step):
            asked.append(promql)
            return None

    ais = AIService.model_validate(minimal)
    spent = RateBudget(per_second=0.001, burst=1)
    assert spent.take(1)
    assert read_history(ais, Source(), AutoscalerState(), 1000.0, spent) is None and asked == []  # type: ignore[arg-type]
    read_history(ais, Source(), AutoscalerState(), 1000.0, RateBudget(per_second=1, burst=10))  # type: ignore[arg-type]
    assert asked  # with budget, the history is read


def test_one_prometheus_source_keeps_a_connection_per_worker_thread():
    from aifleet.autoscaler.prometheus import HTTP_POOL_SIZE, PrometheusSource

    source = PrometheusSource("http://127.0.0.1:9090")
    adapter = source._client._session.get_adapter("http://127.0.0.1:9090/api/v1/query")
    assert adapter._pool_maxsize == HTTP_POOL_SIZE and adapter.max_retries.total == 0


def test_a_new_aiservice_gets_one_event_for_its_children_and_its_generated_secret():
    from aifleet.reconciler.observed import AppliedCache
    from aifleet.reconciler.sync import apply_children, create_generated

    cluster = _Cluster({})
    events: list[tuple[str, str, str]] = []
    secret = {"kind": "Secret", "metadata": {"namespace": "ml", "name": "chat-admin"}}
    service = {"kind": "Service", "metadata": {"namespace": "ml", "name": "chat", "labels": {}}, "spec": {}}
    applied = AppliedCache()
    made, said = create_generated([secret], cluster.lookup, cluster, applied)  # type: ignore[arg-type]
    assert made and said == ["generated Secret chat-admin (a random key, kept until deleted)"]
    apply_children([service], cluster.lookup, cluster, applied, lambda *e: events.append(e), said)  # type: ignore[arg-type]
    assert events == [("Normal", "Created",
                       "created Service chat; generated Secret chat-admin (a random key, kept until deleted)")]


def test_no_history_is_read_for_a_fleet_without_series(minimal):
    from aifleet.api import AIService
    from aifleet.autoscaler.prometheus import Batch
    from aifleet.autoscaler.sample import Sample
    from aifleet.reconciler.observed import AppliedCache
    from aifleet.reconciler.scaling import Autoscalers, autoscale

    ranges: list[str] = []
    serving: dict[tuple[str, str], Sample] = {}

    class Prometheus(_Prometheus):
        def query_many(self, promql, key_labels=None):
            return Batch(samples=dict(serving))

        def query_range(self, promql, span, step):
            ranges.append(promql)
            return None

    minimal["metadata"].update(namespace="ml", name="chat")
    minimal["spec"]["autoscaling"].update(engine="operator", metrics={"address": "http://127.0.0.1:9"})
    ais = AIService.model_validate(minimal)
    deployment = {"metadata": {"name": "chat-triton", "resourceVersion": "1"}, "spec": {"replicas": 1},
                  "status": {"readyReplicas": 1}}
    autoscalers = Autoscalers(source_factory=Prometheus)
    autoscale(ais, lambda *_: deployment, None, autoscalers, AppliedCache(), lambda *e: None)  # type: ignore[arg-type]
    assert ranges == []  # nothing serves: nothing to forecast, no range query
    serving[("ml", "chat")] = Sample.of(5.0)
    autoscalers = Autoscalers(source_factory=Prometheus)  # a fresh batch (one is reused for 3 s)
    autoscale(ais, lambda *_: deployment, None, autoscalers, AppliedCache(), lambda *e: None)  # type: ignore[arg-type]
    assert ranges  # traffic: the history is read


def test_our_copy_of_a_written_object_goes_once_the_watch_has_caught_up():
    from aifleet.reconciler.observed import AppliedCache

    applied = AppliedCache()
    ours = {"kind": "Service", "metadata": {"namespace": "ml", "name": "chat", "resourceVersion": "7"}}
    applied.remember(ours)
    older = {"kind": "Service", "metadata": {"namespace": "ml", "name": "chat", "resourceVersion": "6"}}
    assert applied.newest("Service", "ml", "chat", older)["metadata"]["resourceVersion"] == "7"
    caught_up = {"kind": "Service", "metadata": {"namespace": "ml", "name": "chat", "resourceVersion": "7"}}
    assert applied.newest("Service", "ml", "chat", caught_up) is caught_up
    assert applied.newest("Service", "ml", "chat", older) is older  # forgotten: the watch holds it now


def test_a_settled_aiservice_is_quiet_and_its_timer_passes_are_poll_only():
    from aifleet.reconciler.passes import PassResult
    from aifleet.reconciler.schedule import Schedule

    schedule = Schedule(resync_seconds=300)
    assert schedule.plan(0.0, poked=False) == (True, False)  # never passed: a full pass first
    schedule.passed(PassResult(15.0, True, True, None, settled=True), poll_due=True, now=100.0)
    assert schedule.quiet and 100.0 < schedule.next_poll <= 115.0 and schedule.next_full == 400.0
    assert schedule.plan(schedule.next_poll, poked=False) == (True, True)  # only the poll: it may skip the rest
    assert schedule.plan(schedule.next_poll, poked=True) == (True, False)  # a watch event: everything is looked at
    assert schedule.plan(400.0, poked=False)[1] is False  # the resync looks at everything
    schedule.passed(PassResult(None, False, False, 2.0, settled=True), poll_due=False, now=120.0)
    assert schedule.next_poll == float("inf") and schedule.due_at() == 122.0  # hpa engine; an engine's timer in 2 s


def test_a_failed_pass_backs_off_and_only_its_retry_is_due():
    from aifleet.clients.kube import UnreachableError
    from aifleet.reconciler.schedule import Schedule

    schedule = Schedule(resync_seconds=300, next_poll=105.0, next_full=400.0, settled=True)
    assert schedule.failed(RuntimeError("boom"), now=100.0) == 2.0
    assert not schedule.quiet and schedule.due_at() == 102.0
    assert schedule.plan(103.0, poked=False) == (False, False)  # the retry is a full pass
    for _ in range(10):
        wait = schedule.failed(UnreachableError("down"), now=100.0)
    assert wait == 30.0  # an outage: retried every 30 s at most (its end wakes every worker anyway)


def _quiet_job(minimal, now=None):
    from aifleet.reconciler.schedule import Job

    cluster, engines = _chat(minimal)
    job = Job(("ml", "chat"), cluster.lookup, engines, lambda *e: None, resync_seconds=300,
              clock=(lambda: now[0]) if now else time.monotonic)
    for _ in range(3):  # create the children, report them, decide, settle (the worker's passes)
        job.step(copy.deepcopy(minimal), poked=True)
        if now:
            now[0] = max(now[0], job.schedule.next_poll)
    assert job.schedule.quiet and job.ready
    return job, cluster


def test_the_sweep_runs_the_poll_of_a_quiet_aiservice_without_waking_its_worker(minimal):
    from aifleet.reconciler.sweep import Entry, Sweep

    now = [1000.0]
    job, cluster = _quiet_job(minimal, now)
    trigger = Trigger()
    now[0] = job.schedule.next_poll - 1.0
    sweep = Sweep(threads=2, clock=lambda: now[0])
    sweep.add(Entry(job, trigger, lambda: copy.deepcopy(minimal)))
    assert sweep.due() == []  # not yet
    now[0] = job.schedule.next_poll
    cluster.calls.clear()
    asyncio.run(sweep.sweep())
    assert sweep.passes == 1 and cluster.calls == [] and not trigger.poked
    assert job.schedule.next_poll > now[0]  # the next poll is scheduled by the pass the sweep ran

    trigger.set()  # a watch event: the worker has it, the sweep leaves it alone
    now[0] = job.schedule.due_at()
    assert sweep.due() == []


def test_the_sweep_hands_an_aiservice_to_its_worker_when_its_pass_fails_and_skips_one_that_is_running(minimal):
    from aifleet.reconciler.sweep import Entry, Sweep

    job, cluster = _quiet_job(minimal)
    trigger = Trigger()
    sweep = Sweep(threads=1, clock=lambda: job.schedule.due_at())
    sweep.add(Entry(job, trigger, lambda: copy.deepcopy(minimal)))
    with job.lock:  # its worker is in a pass right now
        asyncio.run(sweep.sweep())
    assert sweep.passes == 0 and not trigger.poked

    def refuse(*_args):
        raise RuntimeError("the API server said no")

    cluster.lookup = cluster.get = refuse  # type: ignore[method-assign]
    job.lookup = refuse
    job.schedule.next_full = 0.0  # the resync is due: a full pass, which fails
    asyncio.run(sweep.sweep())
    assert job.schedule.failures == 1 and not job.schedule.quiet
    assert trigger.poked  # the worker retries with its backoff
    assert sweep.due() == []


def test_a_poll_of_the_sweep_that_would_change_something_is_left_whole_to_the_worker(minimal):
    from aifleet.reconciler.sweep import Entry, Sweep

    now = [1000.0]
    job, cluster = _quiet_job(minimal, now)
    memory = job.engines.autoscalers.memory("ml", "chat")
    memory.shown = None  # as if the status showed another decision: this poll would write it
    state_before, due = memory.state, job.schedule.next_poll
    now[0] = due
    trigger = Trigger()
    sweep = Sweep(threads=1, clock=lambda: now[0])
    sweep.add(Entry(job, trigger, lambda: copy.deepcopy(minimal)))
    cluster.calls.clear()
    asyncio.run(sweep.sweep())
    assert trigger.poked and sweep.passes == 0 and cluster.calls == []
    assert memory.shown is None and memory.state is state_before  # nothing of the sweep's poll was kept
    assert job.schedule.next_poll == due  # the worker's pass polls again, and acts on the worker threads
    job.step(copy.deepcopy(minimal), poked=True)
    assert memory.shown is not None and job.schedule.next_poll > due


def test_a_full_pass_tells_the_secret_reader_whether_its_aiservice_is_settled(minimal):
    from aifleet.api import AIService
    from aifleet.api.children import names
    from aifleet.reconciler.passes import run_pass

    cluster, engines = _chat(minimal)
    admin = ("ml", names(AIService.model_validate(minimal)).triton_admin)
    for _ in range(3):
        run_pass(copy.deepcopy(minimal), cluster.lookup, engines, lambda *e: None, True)
    assert admin in engines.secrets._settled  # its generated key is read again only every 30 minutes now
    deployment = cluster.objects[("Deployment", "ml", "chat-triton")]
    deployment["status"] = {"replicas": 1, "readyReplicas": 0, "availableReplicas": 0}
    assert not run_pass(copy.deepcopy(minimal), cluster.lookup, engines, lambda *e: None, False).settled
    assert admin not in engines.secrets._settled
