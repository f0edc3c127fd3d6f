"""Fleet benchmark: the operator at fleet scale on a REAL API server, measured from the outside.

    .venv/bin/python benchmarks/fleet.py [--services 100,1000] [--label after] [--profile] [--baseline]
                                         [--out benchmarks/results/fleet.md] [--operator-src DIR]
    .venv/bin/python benchmarks/fleet.py --render-only      # rebuild the table from the saved runs

~10 minutes with the defaults (+~5 with --baseline) on the 2-core dev machine.

Starts what it needs (its own local control plane from e2e/cluster, unless --kubeconfig names a running one;
a real Prometheus from the e2e harness; a fake Triton /metrics endpoint that Prometheus scrapes) and runs the
operator as a separate process, as in production (`python -m aifleet.cli run --health-port 0 ...`), under its
OWN identity: ServiceAccount aifleet-bench/operator bound to cluster-admin (the benchmark measures efficiency,
not RBAC), a token from the TokenRequest API (`kubectl create token --duration=2h`) and a kubeconfig for it.
Every request count comes from the API server's audit log, filtered by that user; nothing is taken from the
operator's own bookkeeping.

Phases:
  1. latency     one AIService, ~20 times: create -> Deployment, Service, PDB and ServiceAccount exist, and
                 -> Ready=True (p50, p99), each run deleted before the next (one warm-up run is discarded).
  2. converge    N AIServices (each N of --services) across 10 namespaces, created in bulk by a client with no
                 rate limit (16 threads); time until all are Ready; the operator's CPU seconds and peak RSS
                 (/proc); audit counts by verb for the operator and for all users. Phases are torn down
                 before the next N.
  3. quiet       the largest N converged (including each AIService's metrics warm-up: with nothing scraping
                 these fleets, ScalingActive turns False once, warmupSeconds after the fleet turned available),
                 then nothing changes for >= 3 resync periods (AIFLEET_RESYNC_SECONDS, 30 s):
                 the operator's writes (create/update/patch/delete) from the audit log, and Events it created
                 (the audit policy drops Events, so those are counted from the Events API).
  4. autoscale   the same N on the operator engine pointed at the real Prometheus. Until now Prometheus had no
                 series (every poll: "empty"); then a fake Triton endpoint appears with a steady RPS for every
                 AIService. "Every AIService got a decision this poll", whatever the engine's design: the
                 first ScalingActive flip to True (seen on a watch) comes within one poll of the series
                 becoming visible (our own query of the same expression), and every other flip within one
                 poll of that first one. Then, once every rate() covers a full 1-minute window, a steady
                 window: Prometheus queries per minute
                 (Prometheus' own prometheus_http_requests_total{handler="/api/v1/query"}, minus ours) and
                 the operator's writes per minute under steady traffic.

Output: one markdown table (a column per --label; earlier runs' JSON in the results dir are included, so a
"before" and an "after" run end up side by side), with the targets, written to --out and printed; the raw
figures go to benchmarks/results/fleet-<label>.json. --profile adds py-spy profiles of the operator
(convergence and quiet phase) and their top functions.

The machine is shared and noisy: figures are reported, never asserted. Bounded waits only; loopback only;
everything it starts is stopped at the end (the cluster it started is purged unless --keep-cluster).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import base64
import requests
import urllib3
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e" / "services"))
from harness import Prometheus  # noqa: E402

try:  # the engine's own batch expression, so "visible in Prometheus" means what the operator would see
    from aifleet.autoscaler.prometheus import BATCH_RPS_QUERY
except Exception:  # noqa: BLE001 - the benchmark must not depend on the operator's internals
    BATCH_RPS_QUERY = (
        "sum by (namespace, aiservice) (label_replace("
        'rate(nv_inference_request_success{pod=~".+-triton-[a-z0-9]+-[a-z0-9]+"}[1m]), '
        '"aiservice", "$1", "pod", "(.+)-triton-[a-z0-9]+-[a-z0-9]+"))'
    )

urllib3.disable_warnings()

GROUP, VERSION, PLURAL = "aifleet.dev", "v1alpha1", "aiservices"
OP_NS, OP_SA = "aifleet-bench", "operator"
OP_USER = f"system:serviceaccount:{OP_NS}:{OP_SA}"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
BENCH_LABEL = "aifleet-bench/phase"
MANAGED = "app.kubernetes.io/managed-by=aifleet"
CHILDREN = {  # the four children of a minimal AIService: kind -> (namespaced collection path, audit resource)
    "Deployment": ("/apis/apps/v1/namespaces/{ns}/deployments", "deployments"),
    "Service": ("/api/v1/namespaces/{ns}/services", "services"),
    "PodDisruptionBudget": ("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", "poddisruptionbudgets"),
    "ServiceAccount": ("/api/v1/namespaces/{ns}/serviceaccounts", "serviceaccounts"),
}
CHILD_RESOURCES = {r for _, r in CHILDREN.values()}
DEFAULTS = {  # the benchmark's own cluster; env vars of e2e/cluster win when set
    "AIFLEET_CLUSTER_DIR": "/tmp/aifleet-fleet-bench",
    "AIFLEET_APISERVER_PORT": "46443",
    "AIFLEET_ETCD_PORT": "42379",
    "AIFLEET_KCM_PORT": "40357",
    "AIFLEET_SCHEDULER_PORT": "40359",
}
T_START = time.monotonic()


def say(msg: str) -> None:
    print(f"[fleet {time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> Optional[float]:
    """Nearest-rank percentile (p99 of 20 runs is the slowest run)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def rfc3339(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def run(cmd: list[str], env: Optional[dict] = None, timeout: float = 120, check: bool = True,
        input: Optional[str] = None, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, input=input, cwd=cwd)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


# ----------------------------------------------------------------------------------------- API client


class Kube:
    """A minimal, rate-limit-free REST client (requests, one session per thread) from a kubeconfig."""

    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == cfg["current-context"])
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_path = workdir / "ca.crt"
        self.ca_path.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        self.ca_data = cluster["certificate-authority-data"]
        self.cert: Optional[tuple[str, str]] = None
        self.headers = {"Accept": "application/json"}
        if "client-certificate-data" in user:
            crt, key = workdir / "client.crt", workdir / "client.key"
            crt.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            key.chmod(0o600)
            self.cert = (str(crt), str(key))
        elif "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self._local = threading.local()

    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.verify = str(self.ca_path)
            s.cert = self.cert
            s.headers.update(self.headers)
            self._local.session = s
        return s

    def request(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (), timeout: float = 60,
                content_type: str = "application/json", **params: Any) -> Optional[dict]:
        resp = self.session().request(method, self.server + path, params=params or None, timeout=timeout,
                                      verify=str(self.ca_path),  # per request: REQUESTS_CA_BUNDLE beats a session's
                                      data=None if body is None else json.dumps(body),
                                      headers={"Content-Type": content_type})
        if resp.status_code in ok:
            return None
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Optional[dict]:
        return self.request("GET", path, ok=(404,), **params)

    def watch(self, path: str, rv: str, timeout_seconds: int, **params: Any):
        resp = self.session().get(
            self.server + path,
            params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": str(timeout_seconds),
                    "allowWatchBookmarks": "true", **params},
            stream=True, timeout=(10, timeout_seconds + 15), verify=str(self.ca_path),
        )
        if resp.status_code >= 400:
            raise RuntimeError(f"watch {path}: {resp.status_code} {resp.text[:300]}")
        with contextlib.closing(resp):
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)


def conditions(obj: dict) -> dict[str, str]:
    return {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}


class Tracker:
    """List+watch one collection in a thread; records, per object, when it was first seen and when each
    predicate first held (local wall-clock time of the event's arrival)."""

    def __init__(self, kube: Kube, path: str, predicates: dict[str, Callable[[dict], bool]] | None = None,
                 key: Callable[[dict], tuple] | None = None, **params: Any) -> None:
        self.kube, self.path, self.params = kube, path, params
        self.predicates = predicates or {}
        self.key = key or (lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        self.first_seen: dict[tuple, float] = {}
        self.first_true: dict[str, dict[tuple, float]] = {p: {} for p in self.predicates}
        self.present: set[tuple] = set()
        self.deleted: dict[tuple, float] = {}
        self.events = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.synced = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"tracker {path}")

    def start(self) -> "Tracker":
        self.thread.start()
        if not self.synced.wait(60):
            raise RuntimeError(f"could not list {self.path}")
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _see(self, obj: dict, kind: str, now: float) -> None:
        k = self.key(obj)
        with self.lock:
            self.events += 1
            if kind == "DELETED":
                self.present.discard(k)
                self.deleted.setdefault(k, now)
                return
            self.present.add(k)
            self.deleted.pop(k, None)
            self.first_seen.setdefault(k, now)
            for name, pred in self.predicates.items():
                if k not in self.first_true[name]:
                    try:
                        if pred(obj):
                            self.first_true[name][k] = now
                    except Exception:  # noqa: BLE001 - a half-filled object is simply "not yet"
                        pass

    def _run(self) -> None:
        rv = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    listing = self.kube.get(self.path, **self.params) or {}
                    now = time.time()
                    names = set()
                    for item in listing.get("items", []):
                        self._see(item, "ADDED", now)
                        names.add(self.key(item))
                    with self.lock:  # gone while we were not watching
                        for k in self.present - names:
                            self.present.discard(k)
                            self.deleted.setdefault(k, now)
                    rv = listing.get("metadata", {}).get("resourceVersion", "0")
                    self.synced.set()
                for ev in self.kube.watch(self.path, rv, 8, **self.params):
                    if self.stopping.is_set():
                        return
                    typ, obj = ev.get("type"), ev.get("object") or {}
                    if typ == "ERROR":
                        rv = None  # 410 Gone and friends: list again
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if typ != "BOOKMARK":
                        self._see(obj, typ, time.time())
            except Exception as exc:  # noqa: BLE001 - keep tracking; a blip must not end the benchmark
                if self.stopping.is_set():
                    return
                say(f"tracker {self.path}: {type(exc).__name__}: {str(exc)[:200]}; relisting")
                rv = None
                time.sleep(1)

    def count_true(self, pred: str, keys: Optional[set] = None) -> int:
        with self.lock:
            return len(self.first_true[pred]) if keys is None else len(keys & self.first_true[pred].keys())


# ----------------------------------------------------------------------------------------- audit log


@dataclass
class Req:
    ts: float
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int


class Audit:
    """Reads the API server's audit log (Metadata level, one JSON line per stage) from a byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def read(self, offset: int, t0: float, t1: float) -> list[Req]:
        out, seen = [], set()
        with open(self.path, "rb") as f:
            f.seek(offset)
            for raw in f:
                try:
                    e = json.loads(raw)
                except ValueError:
                    continue  # a line still being written
                if e.get("auditID") in seen:
                    continue  # watches log ResponseStarted and ResponseComplete
                seen.add(e.get("auditID"))
                ts = rfc3339(e["requestReceivedTimestamp"])
                if not (t0 <= ts < t1):
                    continue
                o = e.get("objectRef") or {}
                out.append(Req(ts, e.get("user", {}).get("username", ""), e.get("verb", ""), o.get("resource", ""),
                               o.get("subresource", ""), o.get("namespace", ""), o.get("name", ""),
                               (e.get("responseStatus") or {}).get("code", 0)))
        return out


def status_changes(before: dict[tuple, dict], after: dict[tuple, dict]) -> dict[tuple, set[str]]:
    """Per AIService, which status fields differ between two snapshots (conditions by type, autoscaling by key)."""
    out: dict[tuple, set[str]] = {}
    for key in set(before) | set(after):
        a, b = before.get(key) or {}, after.get(key) or {}
        changed: set[str] = set()
        for f in set(a) | set(b):
            if f == "conditions":
                ca = {c.get("type"): c for c in a.get(f) or []}
                cb = {c.get("type"): c for c in b.get(f) or []}
                changed |= {f"conditions[{t}]" for t in set(ca) | set(cb) if ca.get(t) != cb.get(t)}
            elif isinstance(a.get(f), dict) and isinstance(b.get(f), dict):
                changed |= {f"{f}.{k}" for k in set(a[f]) | set(b[f]) if a[f].get(k) != b[f].get(k)}
            elif a.get(f) != b.get(f):
                changed.add(f)
        if changed:
            out[key] = changed
    return out


def why_written(changes: dict[tuple, set[str]], writes_per_object: collections.Counter) -> dict:
    """Writes on objects whose status did not change at all between the window's ends are no-op writes (a lower
    bound: an object that changed may also have had no-op writes)."""
    fields = collections.Counter(f for fs in changes.values() for f in fs)
    return {
        "objects_status_changed": len(changes),
        "status_fields_changed": dict(fields.most_common(8)),
        "writes_on_unchanged_objects": sum(n for k, n in writes_per_object.items() if k not in changes),
    }


def by_verb(reqs: Iterable[Req]) -> dict[str, int]:
    return dict(collections.Counter(r.verb for r in reqs).most_common())


def writes_by_target(reqs: Iterable[Req]) -> dict[str, int]:
    c = collections.Counter(
        f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}" for r in reqs if r.verb in WRITE_VERBS
    )
    return dict(c.most_common())


def fmt_counts(counts: dict[str, int], limit: int = 6) -> str:
    if not counts:
        return "0"
    items = list(counts.items())
    text = ", ".join(f"{k} {v:,}" for k, v in items[:limit])
    return text + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


# ------------------------------------------------------------------------------------ the operator process


def proc_stat(pid: int) -> dict[str, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / tick,  # utime + stime (all threads)
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
    }


class ProcSampler:
    """Samples the operator's RSS and thread count twice a second, for per-phase peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0.0
        self.peak_threads = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="proc sampler")
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            s = proc_stat(self.pid)
            if s:
                self.peak_rss = max(self.peak_rss, s["rss_mb"])
                self.peak_threads = max(self.peak_threads, int(s["threads"]))

    def reset(self) -> None:
        s = proc_stat(self.pid)
        self.peak_rss, self.peak_threads = s.get("rss_mb", 0.0), int(s.get("threads", 0))


class Operator:
    def __init__(self, kubeconfig: Path, log_path: Path, resync: float, src: Optional[str] = None) -> None:
        self.log_path = log_path
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AIFLEET_RESYNC_SECONDS": f"{resync:g}",
               "PYTHONUNBUFFERED": "1"}
        if src:  # another checkout's operator (e.g. a git worktree of an older commit), ahead of the installed one
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(src).resolve() / "operator"),
                                                               env.get("PYTHONPATH")]))
        self.cmd = [sys.executable, "-m", "aifleet.cli", "run", "--health-port", "0", "--metrics-port", "0"]
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@dataclass
class Window:
    """What the operator did during one observed window (see Bench.observe_window)."""

    t0: float
    t1: float
    cpu_s: float
    prometheus_queries: float
    operator_requests: list
    writes: list
    status_changes: dict
    query_log: dict
    profile: object = None

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def per_min(self, count: float) -> float:
        return count / self.seconds * 60


class Profiler:
    """py-spy record on the operator (collapsed stacks, only threads that are running)."""

    def __init__(self, pid: int, out: Path, rate: int = 20) -> None:
        self.out = out
        exe = Path(sys.executable).with_name("py-spy")
        self.proc = subprocess.Popen(
            [str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
             "--nonblocking", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def stop(self) -> Optional[dict]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return summarize_profile(self.out) if self.out.exists() else None


def _frame(frame: str) -> str:
    # "fn (path/to/file.py:123)" -> "fn (file.py)"
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    short = "/".join(Path(path).parts[-2:]) if "aifleet" in path or "kopf" in path else Path(path).name
    return f"{m.group(1)} ({short})"


def summarize_profile(path: Path, top: int = 15) -> dict:
    self_c: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count  # --threads: the first frame names the thread
        fr = [_frame(f) for f in frames[1:]] or ["?"]
        self_c[fr[-1]] += count
        for f in set(fr):
            incl[f] += count
    share = lambda c: [(k, v, round(100 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    busy = sorted(threads.values(), reverse=True)
    return {"samples": total, "self": share(self_c), "inclusive": share(incl), "threads_seen": len(threads),
            "busiest_threads_pct": [round(100 * v / total, 1) for v in busy[:8]], "categories": categorize(path, total)}


CATEGORIES = [  # (label, frame-name prefix anywhere in the stack); a sample may count in several
    ("YAML parsing of rendered templates (yaml.safe_load)", ("safe_load ",)),
    ("jinja2 get_template (stat of the template file per call: auto_reload)", ("Environment.get_template ",)),
    ("config_hash (json.dumps + sha256 per child)", ("config_hash ",)),
    ("status PATCH round trip (Kube.patch_status)", ("Kube.patch_status ",)),
    ("child apply/create (Kube.apply, Kube.create)", ("Kube.apply ", "Kube.create ")),
    ("copy.deepcopy", ("deepcopy ",)),
    ("logging", ("Logger._log ",)),
]


def categorize(path: Path, total: int) -> dict[str, float]:
    counts: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        for label, prefixes in CATEGORIES:
            if any(f.startswith(prefixes) for f in frames):
                counts[label] += int(n)
        if frames[-1].startswith("EpollSelector.select "):
            counts["event loop idle (EpollSelector.select)"] += int(n)
        elif any(f.startswith("BaseEventLoop.run_forever ") for f in frames):
            counts["event loop busy: kopf watches, indexes, handlers, posting"] += int(n)
    return {k: round(100 * v / max(1, total), 1) for k, v in counts.most_common()}


# ------------------------------------------------------------------------ Prometheus and a fake Triton


class BenchPrometheus(Prometheus):
    """The harness's Prometheus, with the query log on (which queries, how many, for which services)."""

    @property
    def query_log(self) -> Path:
        return self.state_dir / "queries.log"

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["global"]["query_log_file"] = str(self.query_log)
        return cfg

    own_queries = 0

    def instant(self, expr: str) -> list[dict]:
        BenchPrometheus.own_queries += 1
        return self.query(expr)

    def query_requests(self) -> float:
        """Prometheus' own count of /api/v1/query requests so far, from its /metrics (all status codes)."""
        body = requests.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line)


class FakeTriton:
    """A /metrics endpoint with Triton's nv_inference_request_success counter for many AIServices' pods,
    each growing at a steady rate (explicit sample timestamps, so rate() is exact)."""

    def __init__(self, services: list[tuple[str, str]], base_rps: float = 10.0) -> None:
        self.t0 = time.time()
        self.series = []
        for i, (ns, name) in enumerate(services):
            labels = f'namespace="{ns}",pod="{name}-triton-5f7b8c9d4-x{i % 7}",model="m",version="1"'
            self.series.append((labels, base_rps + i % 80))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                now = time.time()
                ms = int(now * 1000)
                body = ["# TYPE nv_inference_request_success counter"]
                body += [f"nv_inference_request_success{{{lab}}} {r * (now - outer.t0):.3f} {ms}"
                         for lab, r in outer.series]
                data = ("\n".join(body) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="fake triton")
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------ the cluster


class Cluster:
    def __init__(self, args: argparse.Namespace, pods_needed: int) -> None:
        self.args = args
        self.started = False
        self.env = dict(os.environ)
        if args.kubeconfig:
            self.kubeconfig = Path(args.kubeconfig).resolve()
            self.audit_path = Path(args.audit_log) if args.audit_log else self.kubeconfig.parent / "audit.log"
            return
        for k, v in DEFAULTS.items():
            self.env.setdefault(k, v)
        if args.cluster_dir:
            self.env["AIFLEET_CLUSTER_DIR"] = args.cluster_dir
        # Pods of `gpusPerPod: 0` AIServices land on the untainted CPU nodes (110 pods each).
        self.env.setdefault("AIFLEET_CPU_NODES", str(max(2, math.ceil(pods_needed * 1.15 / 110) + 1)))
        self.env.setdefault("AIFLEET_NODES", "1")
        self.env.setdefault("AIFLEET_KWOK_LOG_LEVEL", "WARN")
        self.dir = Path(self.env["AIFLEET_CLUSTER_DIR"])
        self.kubeconfig = self.dir / "kubeconfig"
        self.audit_path = self.dir / "audit.log"

    def up(self) -> None:
        if self.args.kubeconfig:
            return
        script = ROOT / "e2e" / "cluster"
        pids = self.dir / "pids"
        running = pids.exists() and any(p.read_text().strip() and Path(f"/proc/{p.read_text().strip()}").exists()
                                        for p in pids.glob("*.pid"))
        if not running and self.dir.exists():  # a stale state dir from an earlier run: start clean
            run(["bash", str(script / "down.sh"), "--purge"], env=self.env, timeout=120, check=False)
        say(f"cluster: up.sh in {self.dir} ({self.env['AIFLEET_CPU_NODES']} CPU nodes, "
            f"API server port {self.env['AIFLEET_APISERVER_PORT']})")
        proc = run(["bash", str(script / "up.sh")], env=self.env, timeout=600)
        self.started = "already up" not in proc.stderr

    def kcm_qps(self) -> str:
        """The controller manager's client QPS: it bounds how fast 1,000 Deployments can roll out at all."""
        pid_file = self.kubeconfig.parent / "pids" / "kube-controller-manager.pid"
        try:
            args = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            return "?"
        qps = next((a.split("=", 1)[1] for a in args if a.startswith("--kube-api-qps=")), "20 (default)")
        return qps

    def down(self) -> None:
        if self.started and not self.args.keep_cluster:
            say("cluster: down.sh --purge")
            run(["bash", str(ROOT / "e2e" / "cluster" / "down.sh"), "--purge"], env=self.env, timeout=180,
                check=False)


# ------------------------------------------------------------------------------------------ the fleet


def aiservice(ns: str, name: str, phase: str, prometheus: str, poll: int) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AIService",
        "metadata": {"name": name, "namespace": ns, "labels": {BENCH_LABEL: phase}},
        "spec": {
            "inference": {
                "modelRepository": {"uri": f"s3://models/{name}"},
                "models": ["m"],
                "gpusPerPod": 0,
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            },
            "autoscaling": {
                "engine": "operator",
                "minReplicas": 1,
                "maxReplicas": 3,
                "targetRPSPerPod": 100,
                "pollIntervalSeconds": poll,
                "metrics": {"address": prometheus},
            },
        },
    }


def ais_path(ns: Optional[str] = None, name: Optional[str] = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{ns}" if ns else "") + f"/{PLURAL}"
    return f"{base}/{name}" if name else base


def is_ready(obj: dict) -> bool:
    return conditions(obj).get("Ready") == "True"


def scaling_active(obj: dict) -> bool:
    return conditions(obj).get("ScalingActive") == "True"


def scaling_settled(obj: dict) -> bool:
    """The engine has judged the metrics: True, or False after the warm-up (still Unknown while it waits)."""
    return conditions(obj).get("ScalingActive") in ("True", "False")


def deployment_available(obj: dict) -> bool:
    return (obj.get("status") or {}).get("availableReplicas", 0) >= 1


def ais_key_of_deployment(obj: dict) -> tuple:
    return obj["metadata"]["namespace"], obj["metadata"]["name"].removesuffix("-triton")


def wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.02,
         progress: Optional[Callable[[], str]] = None, every: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + every
    while time.monotonic() < deadline:
        if check():
            return True
        if progress and time.monotonic() >= next_report:
            say(f"  {what}: {progress()}")
            next_report += every
        time.sleep(interval)
    say(f"  TIMEOUT after {timeout:.0f}s waiting for {what}" + (f" ({progress()})" if progress else ""))
    return False


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = sorted({int(s) for s in args.services.split(",") if s.strip()})
        self.workdir = Path(tempfile.mkdtemp(prefix="aifleet-fleet-"))
        self.results: dict[str, Any] = {"label": args.label, "sizes": self.sizes, "phases": {}}
        self.cluster = Cluster(args, pods_needed=max(self.sizes) + 30)
        self.operator: Optional[Operator] = None
        self.prom: Optional[BenchPrometheus] = None
        self.triton: Optional[FakeTriton] = None
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
        self.sampler = ProcSampler(self.operator.pid)
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

    def cleanup_namespaces(self, phase: Optional[str] = None, initial: bool = False, timeout: float = 300) -> None:
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

    def events_by_operator(self, namespaces: Optional[list[str]] = None, since: float = 0.0) -> int:
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

    # ------------------------------------------------------------------------------------ phases

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
        cpu0 = proc_stat(self.operator.pid)["cpu_s"]
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
        """The cluster's floor: the operator's four children for N services applied directly by a fast client
        (no operator involved; relabelled so the operator's watches ignore them), then until all Deployments
        are available. What the controller-manager, scheduler and KWOK need, whatever the operator does."""
        phase = "baseline"
        nss = [f"fleet-base-{k}" for k in range(self.args.namespaces)]
        say(f"baseline {n}: applying the same 4 children for {n} services directly (no operator)")
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

    def observe_window(self, seconds: float, profile_name: str | None = None) -> "Window":
        """Watch the operator for `seconds` with nothing driven by the benchmark: its CPU, its requests from the
        audit log, the Prometheus queries it caused, and which status fields changed."""
        before = self.status_snapshot()
        prof = None
        if self.args.profile and profile_name:
            prof = Profiler(self.operator.pid, self.log_dir / profile_name)
            self.profiles.append(prof)
        q0, own0 = self.prom.query_requests(), BenchPrometheus.own_queries
        cpu0 = proc_stat(self.operator.pid)["cpu_s"]
        off, t0 = self.audit.offset(), time.time()
        qlog0 = self.prom.query_log.stat().st_size if self.prom.query_log.exists() else 0
        time.sleep(seconds)
        t1 = time.time()
        cpu = proc_stat(self.operator.pid)["cpu_s"] - cpu0
        q1, own1 = self.prom.query_requests(), BenchPrometheus.own_queries
        profile = prof.stop() if prof else None
        changes = status_changes(before, self.status_snapshot())
        time.sleep(1.0)  # the audit log is written asynchronously
        op = [r for r in self.audit.read(off, t0, t1) if r.user == OP_USER]
        return Window(
            t0=t0, t1=t1, cpu_s=cpu, prometheus_queries=q1 - q0 - (own1 - own0), operator_requests=op,
            writes=[r for r in op if r.verb in WRITE_VERBS], status_changes=changes,
            query_log=self.query_log_summary(qlog0, t0, t1), profile=profile,
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
        }
        self.results["phases"]["autoscale"] = res
        say(f"autoscale: {within}/{n} decided in the poll that first saw the series (all within {spread}s of the "
            f"first; {poll}s poll + {slack:g}s slack); lag p50 "
            f"{res['decision_lag_p50_s']}, max {res['decision_lag_max_s']}; Prometheus "
            f"{res['prometheus_queries_per_min']:.0f} queries/min")

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


# ------------------------------------------------------------------------------------------ report


def machine_info() -> dict:
    mem = next((int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), 0)
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "mem_gib": round(mem / 1024 / 1024, 1), "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "kopf": _version("kopf"),
    }


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def git_info(src: Path = ROOT) -> str:
    """The operator code the run used: commit, plus which operator files differ from it (and a digest of the diff)."""
    try:
        head = run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"]).stdout.strip()
    except Exception:  # noqa: BLE001 - e.g. an exported tree (git archive) for --operator-src
        return f"tree {src}"
    try:
        import hashlib

        files = run(["git", "-C", str(src), "diff", "HEAD", "--name-only", "--", "operator"]).stdout.split()
        if not files:
            return head
        digest = hashlib.sha256(run(["git", "-C", str(src), "diff", "HEAD", "--", "operator"]).stdout.encode()).hexdigest()[:8]
        return f"{head} + uncommitted {', '.join(f.removeprefix('operator/aifleet/') for f in files)} (diff {digest})"
    except Exception:  # noqa: BLE001
        return head


def load_runs(directory: Path, current: Optional[dict]) -> list[dict]:
    runs = {}
    for p in sorted(directory.glob("fleet-*.json"), key=lambda p: p.stat().st_mtime):
        with contextlib.suppress(Exception):
            r = json.loads(p.read_text())
            runs[r["label"]] = r
    if current is not None:
        runs[current["label"]] = json.loads(json.dumps(current, default=str))
    order = sorted(runs, key=lambda l: (l != "before", l != "after", l))
    return [runs[l] for l in order]


def _s(x: Any, unit: str = "s", digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}{' ' + unit if unit else ''}"
    return f"{x:,}{' ' + unit if unit else ''}"


def render_markdown(runs: list[dict]) -> str:
    big = max((max(r.get("sizes") or [0]) for r in runs), default=0)
    rows: list[tuple[str, str, Callable[[dict], str]]] = []

    def ph(r: dict, name: str) -> dict:
        return (r.get("phases") or {}).get(name) or {}

    def mark(ok: Optional[bool], text: str) -> str:
        return text if ok is None else f"{text} {'✅' if ok else '❌'}"

    lat = lambda r: ph(r, "latency")  # noqa: E731
    rows.append(("**Apply-to-ready, 1 AIService** (create → child exists, seen on a watch)", "", lambda r: f"{lat(r).get('runs', '—')} runs"))
    rows.append(("create → Deployment, Service, PDB, ServiceAccount all exist, p50", "< 0.5 s",
                 lambda r: mark(None if lat(r).get("children_p50") is None else lat(r)["children_p50"] < 0.5, _s(lat(r).get("children_p50"), digits=3))))
    rows.append(("… p99 (slowest of the runs)", "", lambda r: _s(lat(r).get("children_p99"), digits=3)))
    rows.append(("create → `Ready=True`, p50 / p99", "", lambda r: f"{_s(lat(r).get('ready_p50'), digits=3)} / {_s(lat(r).get('ready_p99'), digits=3)}"))
    sizes = sorted({n for r in runs for n in r.get("sizes") or []})
    for n in sizes:
        c = lambda r, n=n: ph(r, f"converge_{n}")  # noqa: E731
        rows.append((f"**Convergence, {n:,} AIServices** in {runs[-1].get('phases', {}).get(f'converge_{n}', {}).get('namespaces', 10)} namespaces", "", lambda r: ""))
        rows.append(("bulk create by the benchmark (16 threads, no client rate limit)", "", lambda r, c=c: _s(c(r).get("create_s"), digits=1)))
        rows.append(("all children applied by the operator (audit: its last 201)", "", lambda r, c=c: _s(c(r).get("all_children_s"), digits=1)))
        rows.append(("all Triton Deployments available (controller-manager, scheduler, KWOK)", "", lambda r, c=c: _s(c(r).get("all_available_s"), digits=1)))
        rows.append(("… floor without the operator: same children applied directly → all available", "",
                     lambda r, n=n: (lambda b: f"{_s(b.get('all_available_s'), digits=1)} (applied in {b.get('applied_s', 0):.1f} s)" if b else "not run (`--baseline`)")(ph(r, f"baseline_{n}"))))
        target = "< 120 s" if n == 1000 else ""
        rows.append(("**all `Ready`** (from the first create)", target,
                     lambda r, c=c, n=n: mark((c(r).get("all_ready_s") or 1e9) < 120 if n == 1000 and c(r) else None,
                                              _s(c(r).get("all_ready_s"), digits=1) if c(r).get("converged") else
                                              (f"not converged: {c(r).get('ready_count')}/{n} in {c(r).get('window_s', 0):.0f} s" if c(r) else "—"))))
        rows.append(("Ready after its Deployment turned available, p50 / p99", "", lambda r, c=c: f"{_s(c(r).get('ready_after_available_p50_s'), digits=1)} / {_s(c(r).get('ready_after_available_p99_s'), digits=1)}"))
        rows.append(("operator CPU seconds / peak RSS / peak threads", "", lambda r, c=c: f"{_s(c(r).get('operator_cpu_s'), digits=1)} / {_s(c(r).get('operator_peak_rss_mb'), 'MiB', 0)} / {_s(c(r).get('operator_peak_threads'), '')}" if c(r) else "—"))
        rows.append(("API requests by the operator, by verb (audit)", "", lambda r, c=c: f"{c(r).get('operator_requests', 0):,}: {fmt_counts(c(r).get('operator_by_verb', {}))}" if c(r) else "—"))
        rows.append(("operator writes per AIService (audit) / Events per AIService", "", lambda r, c=c, n=n: f"{sum(v for k, v in c(r).get('operator_writes', {}).items()) / n:.1f} / {c(r).get('events_by_operator', 0) / n:.1f}" if c(r) else "—"))
        rows.append(("API requests by all users, by verb (audit)", "", lambda r, c=c: f"{c(r).get('all_requests', 0):,}: {fmt_counts(c(r).get('all_by_verb', {}), 5)}" if c(r) else "—"))
        rows.append(("Events created by the operator (Events API; not in the audit log)", "", lambda r, c=c: _s(c(r).get("events_by_operator"), "")))
    q = lambda r: ph(r, "quiet")  # noqa: E731
    rows.append((f"**Quiet, {big:,} converged, nothing changing**", "", lambda r: f"{q(r).get('window_s', 0):.0f} s = {q(r).get('window_s', 0) / (q(r).get('resync_s') or 1):.1f} resyncs of {q(r).get('resync_s', 0):g} s" if q(r) else "—"))
    rows.append(("**writes by the operator** (create/update/patch/delete, audit)", "0",
                 lambda r: mark(q(r).get("operator_writes") == 0, f"{q(r).get('operator_writes', 0):,} ({fmt_counts(q(r).get('operator_writes_by_target', {}), 4)}) on {q(r).get('objects_written', 0):,} objects") if q(r) else "—"))
    rows.append(("… of which on AIServices whose status did not change at all (no-op writes)", "0",
                 lambda r: f"{q(r)['writes_on_unchanged_objects']:,} (status changed on {q(r)['objects_status_changed']:,}: {fmt_counts(q(r)['status_fields_changed'], 3)})" if "writes_on_unchanged_objects" in q(r) else "—"))
    rows.append(("Events created by the operator", "0", lambda r: mark(q(r).get("events_by_operator") == 0, _s(q(r).get("events_by_operator"), "")) if q(r) else "—"))
    rows.append(("operator CPU seconds per minute while quiet", "", lambda r: _s(q(r).get("operator_cpu_s_per_min"), "s/min", 1)))
    rows.append(("Prometheus queries/min while quiet (no series: every poll is `empty`)", "", lambda r: _s(q(r).get("prometheus_queries_per_min"), "", 0)))
    a = lambda r: ph(r, "autoscale")  # noqa: E731
    rows.append((f"**Autoscaler, {big:,} AIServices on the operator engine**", "", lambda r: f"poll {a(r).get('poll_s', '—')} s" if a(r) else "—"))
    rows.append(("AIServices decided in the poll that first saw their series (ScalingActive → True: the first within a poll of the series appearing, all within a poll of the first)", f"{big:,}/{big:,}",
                 lambda r: (mark(a(r).get("decided_within_one_poll") == a(r).get("n"), f"{a(r).get('decided_within_one_poll', 0):,}/{a(r).get('n', 0):,}")
                            + ("" if "decision_spread_s" in a(r) else " (earlier check: each within poll + slack of its series)")) if a(r) else "—"))
    rows.append(("… first decision after the series appeared / all decided within (spread)", "",
                 lambda r: f"{_s(a(r).get('first_decision_after_s'), digits=1)} / {_s(a(r).get('decision_spread_s'), digits=1)}" if "decision_spread_s" in a(r) else "—"))
    rows.append(("decision lag after the series appeared, p50 / p99 / max (includes waiting for the next poll)", "", lambda r: f"{_s(a(r).get('decision_lag_p50_s'), digits=1)} / {_s(a(r).get('decision_lag_p99_s'), digits=1)} / {_s(a(r).get('decision_lag_max_s'), digits=1)}"))
    rows.append(("Prometheus queries/min, steady traffic (its own request counter)", "", lambda r: _s(a(r).get("prometheus_queries_per_min"), "", 0)))
    rows.append(("operator writes/min under steady traffic", "", lambda r: f"{_s(a(r).get('operator_writes_per_min'), '', 0)} ({fmt_counts(a(r).get('operator_writes_by_target', {}), 3)})" if a(r) else "—"))
    rows.append(("… status fields that changed under steady traffic (objects)", "",
                 lambda r: f"{fmt_counts(a(r)['status_fields_changed'], 3)} ({a(r)['objects_status_changed']:,} objects; {a(r)['writes_on_unchanged_objects']:,} writes on unchanged ones)" if "status_fields_changed" in a(r) else "—"))
    rows.append(("operator CPU seconds per minute, steady traffic", "", lambda r: _s(a(r).get("operator_cpu_s_per_min"), "s/min", 1)))

    head = "| | target | " + " | ".join(r["label"] for r in runs) + " |"
    lines = ["# Fleet benchmark: the operator at fleet scale on a real API server", ""]
    for r in runs:
        load = ", ".join(f"{x:.1f}" for x in (r.get("load_before") or []))
        lines.append(f"- **{r['label']}**: {r.get('date')}; {r.get('nproc')} cores, {r.get('mem_gib')} GiB (shared, "
                     f"load average {load} at the start); Kubernetes {r.get('kubernetes')} (controller-manager client QPS "
                     f"{r.get('controller_manager_qps', '?')}); Python {r.get('python')}, "
                     f"kopf {r.get('kopf')}; aifleet {r.get('git')}; run took {r.get('duration_s', 0) / 60:.1f} min; "
                     f"`{r.get('command')}`")
        if r.get("error"):
            lines.append(f"  - **stopped early**: {r['error']}")
    lines += ["", head, "| --- | --- | " + " | ".join("---" for _ in runs) + " |"]
    for name, target, fn in rows:
        cells = []
        for r in runs:
            try:
                cells.append(fn(r))
            except Exception:  # noqa: BLE001 - an older run may lack a figure
                cells.append("—")
        lines.append(f"| {name} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "Method: the operator runs as a separate process (`python -m aifleet.cli run --health-port 0 "
              "--metrics-port 0`) as ServiceAccount `aifleet-bench/operator` bound to **cluster-admin** (this "
              "measures efficiency, not RBAC) with a TokenRequest token; every request count is from the API "
              "server's audit log filtered by that user. The audit policy drops Events, so Events are counted "
              "in the Events API (`source=aifleet`). AIServices: `gpusPerPod: 0`, 10m CPU, `minReplicas: 1`, "
              "operator engine polling the benchmark's real Prometheus. Resync shortened with "
              "`AIFLEET_RESYNC_SECONDS`. A decision 'within one poll' = ScalingActive seen True on a watch at "
              "most `poll + slack` seconds after our own query of the engine's batch expression first returned "
              "that AIService's series. Noisy shared machine: figures, not assertions.", ""]
    for r in runs:
        details = detail_lines(r)
        if details:
            lines += [f"## Details: {r['label']}", "", *details, ""]
    return "\n".join(lines)


def detail_lines(r: dict) -> list[str]:
    out = []
    phases = r.get("phases") or {}
    for name, p in phases.items():
        if name.startswith("converge_"):
            out.append(f"- {name}: busiest users {fmt_counts(p.get('top_users', {}), 8)}; operator writes "
                       f"{fmt_counts(p.get('operator_writes', {}), 8)}")
    q = phases.get("quiet") or {}
    if q:
        out.append(f"- quiet: operator requests {fmt_counts(q.get('operator_requests_by_verb', {}), 8)}; at most "
                   f"{q.get('writes_per_object_max')} writes to one object; status fields that changed: "
                   f"{q.get('status_fields_changed', q.get('status_fields_changed_in_sample')) or 'none'}; "
                   f"Prometheus query log: {q.get('query_log')}")
    a = phases.get("autoscale") or {}
    if a:
        out.append(f"- autoscale: series visible {a.get('series_visible_after_s', 0):.1f} s after the target was added; "
                   f"decided at all {a.get('decided_at_all')}/{a.get('n')}; slack {a.get('slack_s')} s; steady-window "
                   f"query log: {a.get('query_log')}")
    for name, p in phases.items():
        prof = p.get("profile") if isinstance(p, dict) else None
        if prof:
            out.append(f"- py-spy profile, {name} ({prof['samples']:,} samples of running threads, "
                       f"{prof.get('threads_seen', '?')} threads seen):")
            if prof.get("categories"):
                out.append("  - where: " + "; ".join(f"{k} {v}%" for k, v in prof["categories"].items()))
            out.append("  - self: " + "; ".join(f"{k} {pc}%" for k, _, pc in prof["self"][:10]))
            out.append("  - inclusive: " + "; ".join(f"{k} {pc}%" for k, _, pc in prof["inclusive"][:14]))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="100,1000", help="fleet sizes, comma-separated (default 100,1000)")
    parser.add_argument("--label", default="before", help="column name in the table (e.g. before, after)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fleet.md"))
    parser.add_argument("--kubeconfig", help="reuse a running cluster (admin kubeconfig) instead of starting one")
    parser.add_argument("--audit-log", help="its API server's audit log (default: audit.log next to --kubeconfig)")
    parser.add_argument("--cluster-dir", help=f"state dir of the cluster to start (default $AIFLEET_CLUSTER_DIR or "
                                              f"{DEFAULTS['AIFLEET_CLUSTER_DIR']})")
    parser.add_argument("--log-dir", help="operator log and raw py-spy profiles (default /tmp/aifleet-fleet-logs/LABEL)")
    parser.add_argument("--keep-cluster", action="store_true", help="leave the cluster it started running")
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--resync", type=float, default=30.0, help="AIFLEET_RESYNC_SECONDS for the operator")
    parser.add_argument("--poll", type=int, default=15, help="spec.autoscaling.pollIntervalSeconds of the fleet")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after convergence before the quiet window")
    parser.add_argument("--quiet", type=float, default=None, help="quiet window seconds (default 3 resyncs + 5 s)")
    parser.add_argument("--steady", type=float, default=60.0, help="steady-traffic window seconds (0 skips the phase)")
    parser.add_argument("--decision-slack", type=float, default=3.0,
                        help="seconds added to the poll for 'decided within one poll' (our 1 s visibility probe, "
                             "the status write, the watch)")
    parser.add_argument("--converge-timeout", type=float, default=None, help="seconds (default max(180, 0.6 s x N))")
    parser.add_argument("--baseline", action="store_true",
                        help="also measure the cluster's floor: the same children for the largest N applied directly, "
                             "no operator, until all Deployments are available (~5 more minutes)")
    parser.add_argument("--operator-src", help="run the operator from this checkout (e.g. a git worktree of another "
                                               "commit) instead of this one")
    parser.add_argument("--profile", action="store_true", help="py-spy the operator during the largest convergence "
                                                               "and the quiet phase (perturbs the figures a little)")
    parser.add_argument("--render-only", action="store_true",
                        help="only rebuild --out from the fleet-*.json results next to it (no cluster, no run)")
    args = parser.parse_args(argv)
    if args.render_only:
        out = Path(args.out)
        runs = load_runs(out.parent, None)
        out.write_text(render_markdown(runs))
        print(out.read_text())
        return 0
    if args.quiet is None:
        args.quiet = 3 * args.resync + 5
    bench = Bench(args)

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    bench.execute()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
