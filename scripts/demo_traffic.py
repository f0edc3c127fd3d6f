"""The demo's second act: real Triton, real Prometheus, real load, and the fleet following it.

Starts a PyTriton server and Prometheus on loopback (labelled as a pod of the demo fleet, as kubernetes_sd
would), points the AIService at that Prometheus, drives stepped traffic with tritonclient and prints
`kubectl get aiservices` as the fleet grows and shrinks. Everything it starts, it stops.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e" / "services"))
import harness  # noqa: E402

NAMESPACE, NAME = "demo", "sentiment"
STEPS = [(30, 10), (60, 100), (75, 0)]  # (seconds, requests per second)


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=True).stdout


def watch(stop: threading.Event) -> None:
    last = ""
    while not stop.is_set():
        row = kubectl("get", "aiservice", NAME, "-n", NAMESPACE, "--no-headers").rstrip()
        without_age = row.rsplit(None, 1)[0]
        if without_age != last:  # print changes, like `kubectl get -w`
            print(time.strftime("%H:%M:%S"), row, flush=True)
            last = without_age
        stop.wait(2)


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="aifleet-demo-"))
    with harness.Prometheus(state / "prometheus", scrape_interval="1s", sd_refresh="1s") as prometheus, \
            harness.TritonServer(state / "triton") as triton:
        prometheus.set_targets("triton", [(triton.metrics_address, {"namespace": NAMESPACE, "pod": f"{NAME}-triton-demo0-pod00"})])
        patch = (
            '{"spec":{"autoscaling":{"maxReplicas":6,"targetRPSPerPod":20,"pollIntervalSeconds":5,'
            '"scaleDown":{"stabilizationWindowSeconds":30},'
            f'"metrics":{{"address":"{prometheus.url}","query":'
            '"sum(rate(nv_inference_request_success{namespace=\\"{namespace}\\",pod=~\\"{name}-triton-.*\\"}[15s]))"}}}}'
        )
        kubectl("patch", "aiservice", NAME, "-n", NAMESPACE, "--type=merge", "-p", patch)
        print(f"\nTriton at {triton.http_url}, Prometheus at {prometheus.url}; traffic steps (s, rps): {STEPS}")
        print("kubectl get aiservices -w:\n" + kubectl("get", "aiservice", NAME, "-n", NAMESPACE).splitlines()[0], flush=True)
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
        watcher.start()
        report = harness.LoadGenerator(state / "load", [triton.http_url], STEPS, workers=8).run()
        time.sleep(15)
        stop.set()
        watcher.join()
        print("\nachieved rps per step:", [round(step["achieved_rps"], 1) for step in report["steps"]])
        print("\nscaling events:")
        print(kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.kind=AIService",
                      "--sort-by=.lastTimestamp", "-o", "custom-columns=TIME:.lastTimestamp,REASON:.reason,MESSAGE:.message"))


if __name__ == "__main__":
    main()
