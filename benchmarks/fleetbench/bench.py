"""One benchmark run: set up the cluster, identity, Prometheus and operator, run the phases, tear down, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from .audit import Audit
from .cluster import Cluster
from .common import (
    BENCH_LABEL,
    OP_NS,
    OP_SA,
    OP_USER,
    PLURAL,
    ROOT,
    rfc3339,
    run,
    say,
    wait,
)
from .kube import Kube, Tracker, ais_path, conditions
from .metrics import BenchPrometheus, FakeTriton
from .phases import Phases
from .process import Operator, ProcSampler, Profiler
from .report import git_info, load_runs, machine_info, render_markdown


class Bench(Phases):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = sorted({int(s) for s in args.services.split(",") if s.strip()})
        self.workdir = Path(tempfile.mkdtemp(prefix="aifleet-fleet-"))
        self.results: dict[str, Any] = {"label": args.label, "sizes": self.sizes, "phases": {}}
        self.cluster = Cluster(args, pods_needed=max(self.sizes) + 30)
        self.operator: Operator | None = None
        self.prom: BenchPrometheus | None = None
        self.triton: FakeTriton | None = None
        self.trackers: list[Tracker] = []
        self.profiles: list[Profiler] = []

    # ------------------------------------------------------------------------------------ set up

    def setup(self) -> None:
        self.cluster.up()
        self.admin = Kube(self.cluster.kubeconfig, self.workdir / "admin")
        self.audit = Audit(self.cluster.audit_path)
        if not self.cluster.audit_path.exists():
            raise SystemExit(f"no audit log at {self.cluster.audit_path} (pass --audit-log)")
        version = self.admin.get("/version") or {}
        self.results["kubernetes"] = version.get("gitVersion", "?")
        self.results["controller_manager_qps"] = self.cluster.kcm_qps()
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}
        self.kenv = env
        self.cleanup_namespaces(initial=True)
        run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / "aifleet.dev_aiservices.yaml")],
            env=env)
        crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/aiservices.aifleet.dev"
        if not wait("the CRD to be Established", lambda: conditions(self.admin.get(crd) or {}).get("Established") == "True",
                    60, interval=0.5):
            raise RuntimeError("the AIService CRD never became Established")
        self.make_identity(env)
        self.check_capacity()
        prom_dir = self.workdir / "prometheus"
        self.prom = BenchPrometheus(prom_dir, scrape_interval="2s", sd_refresh="1s")
        self.prom.start()
        say(f"prometheus: {self.prom.url} (no targets yet)")
        self.results["prometheus"] = self.prom.url

    def make_identity(self, env: dict) -> None:
        """The operator's own user, so the audit log tells its requests apart."""
        run(["kubectl", "create", "namespace", OP_NS], env=env, check=False)
        run(["kubectl", "-n", OP_NS, "create", "serviceaccount", OP_SA], env=env, check=False)
        run(["kubectl", "create", "clusterrolebinding", "aifleet-bench-operator", "--clusterrole=cluster-admin",
             f"--serviceaccount={OP_NS}:{OP_SA}"], env=env, check=False)
        token = run(["kubectl", "-n", OP_NS, "create", "token", OP_SA, "--duration=2h"], env=env).stdout.strip()
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "bench", "cluster": {"server": self.admin.server,
                                                        "certificate-authority-data": self.admin.ca_data}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "bench", "user": "operator"}}],
        }
        self.op_kubeconfig = self.workdir / "operator.kubeconfig"
        self.op_kubeconfig.write_text(yaml.safe_dump(kubeconfig))
        self.op_kubeconfig.chmod(0o600)
        who = Kube(self.op_kubeconfig, self.workdir / "op").request(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        user = who["status"]["userInfo"]["username"]
        if user != OP_USER:
            raise RuntimeError(f"the operator's token is {user!r}, expected {OP_USER!r}")
        say(f"identity: {OP_USER} (cluster-admin via ClusterRoleBinding aifleet-bench-operator), token 2h")

    def check_capacity(self) -> None:
        need = max(self.sizes) + 25

        def capacity() -> int:
            nodes = (self.admin.get("/api/v1/nodes") or {}).get("items", [])
            return sum(int(n["status"].get("allocatable", {}).get("pods", 0)) for n in nodes
                       if not n["spec"].get("taints") and not n["spec"].get("unschedulable"))

        # Fresh KWOK nodes carry the not-ready taint for a moment.
        wait("untainted node capacity", lambda: capacity() >= need, 60, interval=2)
        pods = capacity()
        self.results["untainted_pod_capacity"] = pods
        if pods < need:
            say(f"WARNING: untainted nodes hold {pods} pods, the benchmark needs {max(self.sizes) + 25}: "
                "some AIServices will not turn Ready (start the cluster with more AIFLEET_CPU_NODES)")

    def start_operator(self) -> None:
        log = self.log_dir / "operator.log"
        t0 = time.time()
        off = self.audit.offset()
        self.results["git"] = git_info(Path(self.args.operator_src).resolve() if self.args.operator_src else ROOT)
        self.operator = Operator(self.op_kubeconfig, log, self.args.resync, self.args.operator_src)
        self.sampler = ProcSampler(self.operator.pid, self.cluster.control_plane())
        say(f"operator: pid {self.operator.pid}: {shlex.join(self.operator.cmd)} (AIFLEET_RESYNC_SECONDS="
            f"{self.args.resync:g}), log {log}")

        def watching() -> bool:
            if not self.operator.alive():
                raise RuntimeError(f"the operator exited; see {log}")
            return any(r.user == OP_USER and r.verb == "watch" and r.resource == PLURAL
                       for r in self.audit.read(off, t0 - 1, time.time() + 5))

        if not wait("the operator to watch aiservices", watching, 90, interval=0.5):
            raise RuntimeError(f"the operator never started watching; see {log}")

    # ------------------------------------------------------------------------------------ helpers

    def create_namespaces(self, names: list[str], phase: str) -> None:
        for ns in names:
            self.admin.request("POST", "/api/v1/namespaces",
                               {"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": ns, "labels": {BENCH_LABEL: phase}}}, ok=(409,))

    def cleanup_namespaces(self, phase: str | None = None, initial: bool = False, timeout: float = 300) -> None:
        """Delete the benchmark's namespaces (of one phase, or all) and wait until they are gone."""
        selector = f"{BENCH_LABEL}={phase}" if phase else BENCH_LABEL
        names = [n["metadata"]["name"] for n in (self.admin.get("/api/v1/namespaces", labelSelector=selector) or {}).get("items", [])]
        if not names:
            return
        if initial and (self.operator is None):
            # Left over from an interrupted run on a reused cluster: without a running operator the
            # finalizers would hold the AIServices forever, so drop them first.
            for ns in names:
                for item in (self.admin.get(ais_path(ns)) or {}).get("items", []):
                    if item["metadata"].get("finalizers"):
                        self.admin.request("PATCH", ais_path(ns, item["metadata"]["name"]),
                                           {"metadata": {"finalizers": None}}, ok=(404,),
                                           content_type="application/merge-patch+json")
        say(f"cleanup: deleting {len(names)} namespaces ({selector})")
        for ns in names:
            self.admin.request("DELETE", f"/api/v1/namespaces/{ns}", ok=(404, 409))

        def gone() -> bool:
            left = (self.admin.get("/api/v1/namespaces", labelSelector=selector) or {}).get("items", [])
            self._left = len(left)
            return not left

        wait("namespaces to go", gone, timeout, interval=2, progress=lambda: f"{self._left} left", every=30)

    def events_by_operator(self, namespaces: list[str] | None = None, since: float = 0.0) -> int:
        """Events the operator created (the audit policy drops Events, so count them in the Events API)."""
        paths = [f"/api/v1/namespaces/{ns}/events" for ns in namespaces] if namespaces else ["/api/v1/events"]
        n = 0
        for path in paths:
            for e in (self.admin.get(path, fieldSelector="source=aifleet") or {}).get("items", []):
                if rfc3339(e["metadata"]["creationTimestamp"]) >= since:
                    n += 1
        return n

    def create_many(self, objs: list[dict], threads: int = 16) -> float:
        t0 = time.time()

        def one(obj: dict) -> None:
            self.admin.request("POST", ais_path(obj["metadata"]["namespace"]), obj)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, objs))
        return time.time() - t0

    def track(self, tracker: Tracker) -> Tracker:
        self.trackers.append(tracker)
        return tracker.start()

    def untrack(self, tracker: Tracker) -> None:
        tracker.stop()
        if tracker in self.trackers:
            self.trackers.remove(tracker)

    # ------------------------------------------------------------------------------------ phases: see phases.py

    # ------------------------------------------------------------------------------------ run

    def execute(self) -> None:
        self.out_dir = Path(self.args.out).resolve().parent
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = Path(self.args.log_dir or f"/tmp/aifleet-fleet-logs/{self.args.label}").resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.results["logs"] = str(self.log_dir)
        started = time.time()
        self.results.update(machine_info())
        self.results["command"] = shlex.join([Path(sys.executable).name, *sys.argv])

        try:
            self.setup()
            self.start_operator()
            if self.args.latency_runs > 0:
                self.phase_latency()
            if self.args.baseline:
                self.phase_baseline(max(self.sizes))
            for i, n in enumerate(self.sizes):
                self.phase_converge(n, last=i == len(self.sizes) - 1)
            if self.args.quiet > 0:
                self.phase_quiet()
            if self.args.steady > 0:
                self.phase_autoscale()
            if self.operator and not self.operator.alive():
                self.results["operator_exited"] = self.operator.proc.returncode
        except BaseException as exc:
            self.results["error"] = f"{type(exc).__name__}: {exc}"[:500]
            raise
        finally:
            self.results["load_after"] = os.getloadavg()
            self.results["duration_s"] = time.time() - started
            try:
                self.teardown()
            finally:
                self.report()  # whatever was measured, even when a phase failed

    def teardown(self) -> None:
        for p in self.profiles:
            with contextlib.suppress(Exception):
                p.stop()
        for t in list(self.trackers):
            t.stop()
        if self.triton:
            self.triton.stop()
        if self.operator:
            if self.cluster.args.kubeconfig or not self.cluster.started or self.args.keep_cluster:
                # A cluster that stays: remove the fleet while the operator still handles its finalizers.
                with contextlib.suppress(Exception):
                    self.cleanup_namespaces(timeout=300)
            self.sampler.stopping.set()
            self.operator.stop()
        if self.prom:
            self.prom.stop()
        self.cluster.down()
        shutil.rmtree(self.workdir, ignore_errors=True)  # Prometheus data, the operator's token

    def report(self) -> None:
        out = Path(self.args.out)
        raw = out.parent / f"fleet-{self.args.label}.json"
        raw.write_text(json.dumps(self.results, indent=1, default=str) + "\n")
        runs = load_runs(out.parent, self.results)
        text = render_markdown(runs)
        out.write_text(text)
        print(text)
        say(f"wrote {out} and {raw}")

