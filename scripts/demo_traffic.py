"""The demo's second act: real Triton pods on the real node, real Prometheus, real load, and the fleet following it.

Starts a Prometheus that discovers the pods through the API server (at the operator's default address), puts the
test model on a PersistentVolume of the real node, applies an AIService in a namespace pinned to that node, then
drives stepped traffic through the Service's ClusterIP and prints `kubectl get aiservices` as the fleet grows and
shrinks, with the p95 latency the load generator sees beside it. Everything it starts, it stops.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))
sys.path.insert(0, str(ROOT / "e2e" / "services"))
import harness  # noqa: E402
import realnode  # noqa: E402

NAMESPACE, NAME = "demo", "sentiment"
# (seconds, requests per second). One pod serves 20 rps at most (the model's 50 ms per request, one instance).
STEPS = [(30, 5), (150, 45), (90, 0)]
TARGET_RPS_PER_POD = 10


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, check=True).stdout


def latest_p95(live: Path) -> str:
    lines = live.read_text().splitlines() if live.exists() else []
    if not lines:
        return "p95 -"
    row = json.loads(lines[-1])
    p95 = "-" if row["p95_ms"] is None else f"{row['p95_ms']:.0f} ms"
    return f"p95 {p95:>7}  ({row['ok']} ok, {row['errors']} failed in the last 5 s)"


def watch(stop: threading.Event, live: Path) -> None:
    last = ""
    while not stop.is_set():
        row = kubectl("get", "aiservice", NAME, "-n", NAMESPACE, "--no-headers").rstrip()
        without_age = row.rsplit(None, 1)[0]
        if without_age != last:  # print changes, like `kubectl get -w`, with the latency beside them
            print(time.strftime("%H:%M:%S"), row, " ", latest_p95(live), flush=True)
            last = without_age
        stop.wait(2)


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="aifleet-demo-"))
    node = realnode.find_real_node()
    kubectl("apply", "-f", "-", stdin=json.dumps(realnode.pinned_namespace(NAMESPACE)))
    with realnode.node_prometheus(node, state / "prometheus") as prometheus:
        models = realnode.models_directory(node.volumes / NAMESPACE, service_time_ms=50, instances=1)
        with realnode.models_volume(node, NAMESPACE, models):
            manifest = realnode.real_aiservice(NAME, NAMESPACE, prometheus="", min_replicas=1, max_replicas=6,
                                               target_rps=TARGET_RPS_PER_POD)
            # The operator's defaults, but for the demo's pace: a 30 s scale-down window, 5 s polls.
            autoscaling = manifest["spec"]["autoscaling"]
            del autoscaling["metrics"]["address"]  # prometheus-operated.monitoring.svc:9090, the default
            autoscaling.update(pollIntervalSeconds=5, scaleDown={"stabilizationWindowSeconds": 30})
            print(f"\nPrometheus at {prometheus.url} (in the cluster: prometheus-operated.monitoring.svc:9090)")
            print(f"Applying AIService {NAMESPACE}/{NAME}: 1..6 Triton pods, {TARGET_RPS_PER_POD} rps per pod")
            kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
            realnode.wait_ready(NAME, NAMESPACE, timeout=300)
            print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"))
            url = f"{realnode.service_ip(f'{NAME}-triton', NAMESPACE)}:8000"
            live = state / "latency.jsonl"
            print(f"Traffic through the Service's ClusterIP {url}; steps (seconds, rps): {STEPS}")
            print("kubectl get aiservices -w, with the load generator's p95 latency:")
            print(kubectl("get", "aiservice", NAME, "-n", NAMESPACE).splitlines()[0], flush=True)
            stop = threading.Event()
            watcher = threading.Thread(target=watch, args=(stop, live), daemon=True)
            watcher.start()
            report = harness.LoadGenerator(state / "load", [url], STEPS, workers=16, model="echo", input_name="INPUT0",
                                           batch=0, allow_networks=node.networks, window_s=5, live_path=live,
                                           fresh_connections=True).run()
            time.sleep(20)
            stop.set()
            watcher.join()
            print("\nper step: " + "; ".join(
                f"{s['target_rps']:g} rps for {s['seconds']:g}s -> {s['achieved_rps']:g} rps, "
                f"p95 {s['p95_ms'] or '-'} ms, {s['errors']} failed" for s in report["steps"]))
            print("\nscaling events:")
            print(kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.kind=AIService",
                          "--sort-by=.lastTimestamp",
                          "-o", "custom-columns=TIME:.lastTimestamp,REASON:.reason,MESSAGE:.message"))
            kubectl("delete", "aiservice", NAME, "-n", NAMESPACE, "--wait=true")
    kubectl("delete", "namespace", NAMESPACE, "--wait=false")


if __name__ == "__main__":
    main()
