"""The measured phases (latency, convergence, baseline, quiet, autoscale) and the window they observe."""

from __future__ import annotations

import collections
import json
import math
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from .audit import by_verb, fmt_counts, status_changes, why_written, writes_by_target
from .common import (
    BATCH_RPS_QUERY,
    BENCH_LABEL,
    CHILD_RESOURCES,
    CHILDREN,
    MANAGED,
    OP_USER,
    ROOT,
    WRITE_VERBS,
    pct,
    rfc3339,
    run,
    say,
    wait,
)
from .kube import (
    Tracker,
    ais_key_of_deployment,
    ais_path,
    aiservice,
    deployment_available,
    is_ready,
    scaling_active,
    scaling_settled,
)
from .metrics import BenchPrometheus, FakeTriton
from .process import Profiler, proc_stat


@dataclass
class Window:
    """What the operator did during one observed window (see Phases.observe_window)."""

    t0: float
    t1: float
    cpu_s: float
    prometheus_queries: float
    operator_requests: list
    writes: list
    status_changes: dict
    query_log: dict
    control_plane: dict
    profile: object = None

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def per_min(self, count: float) -> float:
        return count / self.seconds * 60



class Phases:
    """The phases of Bench; the set-up, helpers and report are in bench.py."""

    def phase_latency(self) -> None:
        runs, ns = self.args.latency_runs, "fleet-latency"
        say(f"latency: {runs} runs (+1 warm-up) of one AIService in {ns}")
        self.create_namespaces([ns], "latency")
        ais = self.track(Tracker(self.admin, ais_path(ns), {"ready": is_ready}))
        kids = {kind: self.track(Tracker(self.admin, path.format(ns=ns), labelSelector=MANAGED))
                for kind, (path, _) in CHILDREN.items()}
        children, ready, failed = [], [], 0
        for i in range(runs + 1):
            name = f"lat-{i:02d}"
            key_child, key = (ns, f"{name}-triton"), (ns, name)
            obj = aiservice(ns, name, "latency", self.prom.url, self.args.poll)
            t0 = time.time()
            self.admin.request("POST", ais_path(ns), obj)
            ok = wait(f"{name} children and Ready",
                      lambda: all(key_child in t.first_seen for t in kids.values()) and key in ais.first_true["ready"],
                      60, interval=0.005)
            if ok and i > 0:
                children.append(max(t.first_seen[key_child] for t in kids.values()) - t0)
                ready.append(ais.first_true["ready"][key] - t0)
            elif not ok:
                failed += 1
            self.admin.request("DELETE", ais_path(ns, name), ok=(404,))
            wait(f"{name} deleted", lambda: key in ais.deleted and key_child in kids["Deployment"].deleted, 60,
                 interval=0.05)
        for t in [ais, *kids.values()]:
            self.untrack(t)
        self.results["phases"]["latency"] = {
            "runs": len(children), "failed": failed,
            "children_p50": pct(children, 50), "children_p99": pct(children, 99),
            "ready_p50": pct(ready, 50), "ready_p99": pct(ready, 99),
            "children_all": [round(x, 3) for x in children], "ready_all": [round(x, 3) for x in ready],
        }
        say(f"latency: children p50 {pct(children, 50):.3f}s p99 {pct(children, 99):.3f}s; "
            f"Ready p50 {pct(ready, 50):.3f}s p99 {pct(ready, 99):.3f}s")

    def phase_converge(self, n: int, last: bool) -> None:
        phase = f"n{n}"
        nss = [f"fleet-{phase}-{k}" for k in range(self.args.namespaces)]
        say(f"converge {n}: creating {n} AIServices across {len(nss)} namespaces")
        self.create_namespaces(nss, phase)
        objs = [aiservice(nss[i % len(nss)], f"svc-{i:04d}", phase, self.prom.url, self.args.poll) for i in range(n)]
        keys = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs}
        ais = self.track(Tracker(self.admin, ais_path(), {"ready": is_ready, "active": scaling_active, "settled": scaling_settled},
                                 labelSelector=f"{BENCH_LABEL}={phase}"))
        deps = self.track(Tracker(self.admin, "/apis/apps/v1/deployments", {"available": deployment_available},
                                  key=ais_key_of_deployment, labelSelector=MANAGED))
        time.sleep(1)
        cpu0, others0 = proc_stat(self.operator.pid)["cpu_s"], self.sampler.cpu()
        self.sampler.reset()
        off = self.audit.offset()
        prof = None
        if self.args.profile and last:
            prof = Profiler(self.operator.pid, self.log_dir / "profile-converge.txt")
            self.profiles.append(prof)
        t0 = time.time()
        create_s = self.create_many(objs)
        say(f"converge {n}: created in {create_s:.1f}s")
        def progress() -> str:
            return (f"{ais.count_true('ready', keys)}/{n} Ready, {deps.count_true('available', keys)}/{n} "
                    f"Deployments available, operator {proc_stat(self.operator.pid).get('rss_mb', 0):.0f} MiB")

        timeout = self.args.converge_timeout or max(180.0, n * 0.6)
        done = wait(f"{n} Ready", lambda: ais.count_true("ready", keys) == n, timeout, interval=0.2,
                    progress=progress)
        t_end = time.time()
        profile = prof.stop() if prof else None
        cpu = proc_stat(self.operator.pid)["cpu_s"] - cpu0
        ready_t = [ais.first_true["ready"][k] - t0 for k in keys if k in ais.first_true["ready"]]
        avail_t = [deps.first_true["available"][k] - t0 for k in keys if k in deps.first_true["available"]]
        lag = [ais.first_true["ready"][k] - deps.first_true["available"][k] for k in keys
               if k in ais.first_true["ready"] and k in deps.first_true["available"]]
        # settle a moment so the audit log holds the window's last requests
        time.sleep(1.0)
        reqs = self.audit.read(off, t0, t_end + 0.5)
        op = [r for r in reqs if r.user == OP_USER]
        created_children = sorted(r.ts for r in op if r.resource in CHILD_RESOURCES and r.verb == "patch"
                                  and r.code == 201 and r.namespace in nss)
        users = collections.Counter(r.user.replace("system:serviceaccount:", "sa:") for r in reqs)
        res = {
            "n": n, "namespaces": len(nss), "create_s": create_s, "converged": done,
            "ready_count": len(ready_t),
            "all_ready_s": max(ready_t) if done else None,
            "ready_p50_s": pct(ready_t, 50),
            "children_created": len(created_children),
            "all_children_s": (created_children[-1] - t0) if len(created_children) >= 4 * n else None,
            "all_available_s": max(avail_t) if len(avail_t) == n else None,
            "ready_after_available_p50_s": pct(lag, 50), "ready_after_available_p99_s": pct(lag, 99),
            "operator_cpu_s": cpu, "operator_peak_rss_mb": self.sampler.peak_rss,
            "operator_peak_threads": self.sampler.peak_threads,
            "control_plane": self.sampler.others_since(others0),
            "operator_requests": len(op), "operator_by_verb": by_verb(op), "operator_writes": writes_by_target(op),
            "all_requests": len(reqs), "all_by_verb": by_verb(reqs),
            "top_users": dict(users.most_common(8)),
            "events_by_operator": self.events_by_operator(nss),
            "window_s": t_end - t0,
        }
        if profile:
            res["profile"] = profile
        self.results["phases"][f"converge_{n}"] = res
        self.untrack(deps)
        self.ais_tracker = ais
        say(f"converge {n}: all Ready in {res['all_ready_s']}s; operator CPU {cpu:.1f}s, peak RSS "
            f"{self.sampler.peak_rss:.0f} MiB; operator requests {fmt_counts(res['operator_by_verb'])}")
        if not last:
            self.untrack(ais)
            self.cleanup_namespaces(phase)
            time.sleep(5)
        else:
            self.fleet_keys, self.fleet_nss, self.fleet_phase = keys, nss, phase

    def phase_baseline(self, n: int) -> None:
        """The cluster's floor: the operator's rendered children for N services applied directly by a fast client
        (no operator involved; relabelled so the operator's watches ignore them), then until all Deployments
        are available. What the controller-manager, scheduler and KWOK need, whatever the operator does."""
        phase = "baseline"
        nss = [f"fleet-base-{k}" for k in range(self.args.namespaces)]
        say(f"baseline {n}: applying the same {len(CHILDREN)} kinds of children for {n} services directly (no operator)")
        self.create_namespaces(nss, phase)
        template = self.workdir / "template.yaml"
        template.write_text(yaml.safe_dump(aiservice("fleet-tmpl", "svc-tmpl", phase, self.prom.url, self.args.poll)))
        rendered = run([sys.executable, "-m", "aifleet.cli", "render", str(template)], cwd=ROOT).stdout
        text = json.dumps([m for m in yaml.safe_load_all(rendered) if m]).replace(
            '"app.kubernetes.io/managed-by": "aifleet"', '"app.kubernetes.io/managed-by": "fleet-baseline"')
        manifests = []
        for i in range(n):
            manifests += json.loads(text.replace("svc-tmpl", f"svc-{i:04d}").replace("fleet-tmpl", nss[i % len(nss)]))
        kinds = {m["kind"] for m in manifests}
        paths = {kind: CHILDREN[kind][0] for kind in kinds if kind in CHILDREN}
        manifests = [m for m in manifests if m["kind"] in paths]
        deps = self.track(Tracker(self.admin, "/apis/apps/v1/deployments", {"available": deployment_available},
                                  key=ais_key_of_deployment, labelSelector="app.kubernetes.io/managed-by=fleet-baseline"))
        keys = {(nss[i % len(nss)], f"svc-{i:04d}") for i in range(n)}
        t0 = time.time()

        def apply(m: dict) -> None:
            path = paths[m["kind"]].format(ns=m["metadata"]["namespace"]) + "/" + m["metadata"]["name"]
            self.admin.request("PATCH", path, m, content_type="application/apply-patch+yaml",
                               fieldManager="fleet-baseline", force="true")

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(apply, manifests))
        applied_s = time.time() - t0
        done = wait(f"{n} baseline Deployments available", lambda: deps.count_true("available", keys) == n,
                    self.args.converge_timeout or max(180.0, n * 0.6), interval=0.5,
                    progress=lambda: f"{deps.count_true('available', keys)}/{n}")
        avail = [deps.first_true["available"][k] - t0 for k in keys if k in deps.first_true["available"]]
        self.untrack(deps)
        self.results["phases"][f"baseline_{n}"] = {
            "n": n, "children": len(manifests), "applied_s": applied_s, "converged": done,
            "all_available_s": max(avail) if done else None, "available": len(avail),
        }
        say(f"baseline {n}: {len(manifests)} children applied in {applied_s:.1f}s; all Deployments available in "
            f"{max(avail) if done else 'n/a'}s")
        self.cleanup_namespaces(phase)
        time.sleep(5)

    def phase_quiet(self) -> None:
        n = len(self.fleet_keys)
        settle, window = self.args.settle, self.args.quiet
        # Nothing scrapes these fleets yet, so each AIService's ScalingActive turns False once its warm-up
        # (spec.autoscaling.metrics.warmupSeconds, 120 s after the fleet turned available) is over: a real
        # change, written once. "Quiet" starts after it.
        keys, started = set(self.fleet_keys), time.monotonic()
        wait("ScalingActive judged on all (warm-up over)", lambda: self.ais_tracker.count_true("settled", keys) == n,
             300, interval=0.5, progress=lambda: f"{self.ais_tracker.count_true('settled', keys)}/{n}", every=15)
        warmup_wait = time.monotonic() - started
        say(f"quiet: warm-ups over after {warmup_wait:.0f}s; settling {settle:g}s, then {window:g}s "
            f"({window / self.args.resync:.1f} resync periods of {self.args.resync:g}s) with nothing changing")
        time.sleep(settle)
        w = self.observe_window(window, profile_name="profile-quiet.txt")
        writes = w.writes
        per_object = collections.Counter((r.namespace, r.name) for r in writes)
        res = {
            "n": n, "window_s": w.seconds, "resync_s": self.args.resync, "poll_s": self.args.poll,
            "operator_writes": len(writes), "operator_writes_by_target": writes_by_target(w.operator_requests),
            "operator_requests_by_verb": by_verb(w.operator_requests),
            "objects_written": len(per_object),
            "writes_per_object_max": max(per_object.values()) if per_object else 0,
            "events_by_operator": self.events_by_operator(since=w.t0 - 1),
            "operator_cpu_s": w.cpu_s, "operator_cpu_s_per_min": w.per_min(w.cpu_s),
            "operator_peak_rss_mb": self.sampler.peak_rss, "control_plane": w.control_plane,
            "prometheus_queries": w.prometheus_queries,
            "prometheus_queries_per_min": w.per_min(w.prometheus_queries),
            "query_log": w.query_log,
            **why_written(w.status_changes, per_object),
        }
        if w.profile:
            res["profile"] = w.profile
        self.results["phases"]["quiet"] = res
        say(f"quiet: operator writes {len(writes)} ({fmt_counts(res['operator_writes_by_target'])}), events "
            f"{res['events_by_operator']}, Prometheus {res['prometheus_queries_per_min']:.0f} queries/min")

    def observe_window(self, seconds: float, profile_name: str | None = None) -> Window:
        """Watch the operator for `seconds` with nothing driven by the benchmark: its CPU, its requests from the
        audit log, the Prometheus queries it caused, and which status fields changed."""
        before = self.status_snapshot()
        prof = None
        if self.args.profile and profile_name:
            prof = Profiler(self.operator.pid, self.log_dir / profile_name)
            self.profiles.append(prof)
        q0, own0 = self.prom.query_requests(), BenchPrometheus.own_queries
        cpu0, others0 = proc_stat(self.operator.pid)["cpu_s"], self.sampler.cpu()
        self.sampler.reset()
        off, t0 = self.audit.offset(), time.time()
        qlog0 = self.prom.query_log.stat().st_size if self.prom.query_log.exists() else 0
        time.sleep(seconds)
        t1 = time.time()
        cpu = proc_stat(self.operator.pid)["cpu_s"] - cpu0
        control_plane = self.sampler.others_since(others0)
        q1, own1 = self.prom.query_requests(), BenchPrometheus.own_queries
        profile = prof.stop() if prof else None
        changes = status_changes(before, self.status_snapshot())
        time.sleep(1.0)  # the audit log is written asynchronously
        op = [r for r in self.audit.read(off, t0, t1) if r.user == OP_USER]
        return Window(
            t0=t0, t1=t1, cpu_s=cpu, prometheus_queries=q1 - q0 - (own1 - own0), operator_requests=op,
            writes=[r for r in op if r.verb in WRITE_VERBS], status_changes=changes,
            query_log=self.query_log_summary(qlog0, t0, t1), control_plane=control_plane, profile=profile,
        )

    def status_snapshot(self) -> dict[tuple, dict]:
        """Every AIService of the fleet's status, in one list call."""
        items = (self.admin.get(ais_path(), labelSelector=f"{BENCH_LABEL}={self.fleet_phase}") or {}).get("items", [])
        return {(i["metadata"]["namespace"], i["metadata"]["name"]): i.get("status") or {} for i in items}

    def query_log_summary(self, offset: int, t0: float, t1: float) -> dict:
        if not self.prom.query_log.exists():
            return {}
        total, batch, other, services = 0, 0, 0, collections.Counter()
        with open(self.prom.query_log, "rb") as f:
            f.seek(offset)
            for raw in f:
                try:
                    e = json.loads(raw)
                except ValueError:
                    continue
                if not (t0 <= rfc3339(e.get("ts", "1970-01-01T00:00:00Z")) < t1):
                    continue
                q = (e.get("params") or {}).get("query", "")
                total += 1
                m = re.search(r'namespace="([^"]+)",pod=~"(.+?)-triton', q)
                if m:
                    services["%s/%s" % m.groups()] += 1
                elif q == BATCH_RPS_QUERY:
                    batch += 1
                else:
                    other += 1
        per = list(services.values())
        return {"queries": total, "batch_queries": batch, "per_service_queries": sum(per),
                "distinct_services": len(per), "per_service_max": max(per, default=0),
                "per_service_min": min(per, default=0), "other": other}

    def phase_autoscale(self) -> None:
        keys = sorted(self.fleet_keys)
        n, poll = len(keys), self.args.poll
        ais = self.ais_tracker
        already = ais.count_true("active", set(keys))
        say(f"autoscale: a fake Triton endpoint with a steady RPS for all {n} AIServices appears in Prometheus "
            f"({already} had ScalingActive=True before)")
        self.triton = FakeTriton(keys)
        visible: dict[tuple, float] = {}
        t_step = time.time()
        self.prom.set_targets("fleet-triton", [f"127.0.0.1:{self.triton.port}"])

        def seen() -> bool:
            now = time.time()
            for s in self.prom.instant(BATCH_RPS_QUERY):
                k = (s["metric"].get("namespace", ""), s["metric"].get("aiservice", ""))
                visible.setdefault(k, now)
            return all(k in visible for k in keys)

        wait("the series in Prometheus", seen, 60, interval=1.0)
        t_vis = max(visible.values(), default=time.time())
        say(f"autoscale: all series visible {t_vis - t_step:.1f}s after the target was added; waiting for decisions")
        wait("ScalingActive=True on all", lambda: ais.count_true("active", set(keys)) == n, 4 * poll + 15, interval=0.5,
             progress=lambda: f"{ais.count_true('active', set(keys))}/{n}", every=10)
        lags = [ais.first_true["active"][k] - visible[k] for k in keys if k in ais.first_true["active"] and k in visible]
        slack = self.args.decision_slack
        # "Decided each poll", whatever the engine's design: the first decision comes within one poll (+ slack) of
        # the series appearing, and every other within one poll of that first one, so the whole fleet was decided
        # in the poll that first saw the series. (Lag from the series appearing alone depends on where in the poll
        # cycle they appeared: up to a whole poll of waiting by design, plus the time to write 1,000 statuses.)
        flips = [ais.first_true["active"][k] for k in keys if k in ais.first_true["active"]]
        first = min(flips, default=math.inf)
        noticed = first - min(visible.values(), default=first) <= poll + slack
        within = sum(1 for t in flips if t <= first + poll) if noticed else 0
        spread = (max(flips) - first) if flips else None
        # steady traffic: from when every series' 1-minute rate covers a full window (until then rate() ramps up
        # as the series fills its window, and the readings really move)
        time.sleep(max(0.0, t_vis + 60 + poll + 5 - time.time()))
        w = self.observe_window(self.args.steady)
        res = {
            **why_written(w.status_changes, collections.Counter((r.namespace, r.name) for r in w.writes)),
            "n": n, "poll_s": poll, "slack_s": slack,
            "series_visible_after_s": t_vis - t_step,
            "decided_within_one_poll": within, "decided_at_all": len(lags),
            "decision_lag_p50_s": pct(lags, 50), "decision_lag_p99_s": pct(lags, 99),
            "decision_lag_max_s": max(lags, default=None),
            "first_decision_after_s": None if not flips else first - min(visible.values(), default=first),
            "decision_spread_s": spread,
            "steady_window_s": w.seconds,
            "prometheus_queries_per_min": w.per_min(w.prometheus_queries),
            "operator_writes_per_min": w.per_min(len(w.writes)),
            "operator_writes_by_target": writes_by_target(w.operator_requests),
            "operator_cpu_s_per_min": w.per_min(w.cpu_s),
            "query_log": w.query_log,
            # the steady window's own usage, as in the quiet phase
            "window_s": w.seconds, "operator_cpu_s": w.cpu_s, "operator_peak_rss_mb": self.sampler.peak_rss,
            "control_plane": w.control_plane,
        }
        self.results["phases"]["autoscale"] = res
        say(f"autoscale: {within}/{n} decided in the poll that first saw the series (all within {spread}s of the "
            f"first; {poll}s poll + {slack:g}s slack); lag p50 "
            f"{res['decision_lag_p50_s']}, max {res['decision_lag_max_s']}; Prometheus "
            f"{res['prometheus_queries_per_min']:.0f} queries/min")

