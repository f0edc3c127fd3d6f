"""The Kubernetes side: a rate-limit-free REST client, list+watch trackers, and the benchmark's AIServices."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml

from .common import BENCH_LABEL, GROUP, PLURAL, VERSION, say

urllib3.disable_warnings()


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
        self.cert: tuple[str, str] | None = None
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
                content_type: str = "application/json", **params: Any) -> dict | None:
        resp = self.session().request(method, self.server + path, params=params or None, timeout=timeout,
                                      verify=str(self.ca_path),  # per request: REQUESTS_CA_BUNDLE beats a session's
                                      data=None if body is None else json.dumps(body),
                                      headers={"Content-Type": content_type})
        if resp.status_code in ok:
            return None
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> dict | None:
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

    def start(self) -> Tracker:
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

    def count_true(self, pred: str, keys: set | None = None) -> int:
        with self.lock:
            return len(self.first_true[pred]) if keys is None else len(keys & self.first_true[pred].keys())


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


def ais_path(ns: str | None = None, name: str | None = None) -> str:
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

