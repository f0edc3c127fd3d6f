"""High availability: two operator processes peer through kopf (different priorities); only the higher one acts.
When it dies without a goodbye (SIGKILL), the other takes over once the peering lifetime passes, and a new
AIService still becomes Ready."""

from __future__ import annotations

import time

import yaml

from chart_support import CHART, ROOT, applied_children, log_lines, namespaces, unique, wait_until
from kube import get_json, is_true, kubectl, wait_crd_established
from operator_process import OperatorProcess

PEERING_CRDS = CHART / "crds" / "kopf.dev_peerings.yaml"
LIFETIME = 15  # seconds; the chart's default is 60


def aiservice(name: str, namespace: str) -> str:
    manifest = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    manifest["metadata"].update(name=name, namespace=namespace)
    return yaml.safe_dump(manifest)


def ready(name: str, namespace: str) -> bool:
    return is_true(get_json("aiservice", name, "-n", namespace), "Ready")


def paused(proc: OperatorProcess) -> bool:
    return any(str(e.get("message", "")).startswith("Pausing operations in favour of") for e in log_lines(proc.logs()))


def test_standby_takes_over_when_the_active_replica_dies(crd, artifacts):
    with namespaces("ha") as (namespace,):
        _takeover(namespace, artifacts)


def _takeover(namespace: str, artifacts) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    wait_crd_established("kopfpeerings.kopf.dev")
    peering = "aifleet-ha"
    kubectl("apply", "-f", "-", input=f"apiVersion: kopf.dev/v1\nkind: KopfPeering\n"
                                      f"metadata: {{name: {peering}, namespace: {namespace}}}\n")

    def replica(label: str, priority: int) -> OperatorProcess:
        return OperatorProcess(artifacts / f"ha-{namespace}-{label}", extra_args=[
            "-n", namespace, "--peering", peering, "--priority", str(priority),
            "--peering-lifetime", str(LIFETIME), "--metrics-port", "0",
        ])

    standby, active = replica("standby", 10), replica("active", 20)
    standby.start()
    standby.wait_log("peering as 'aifleet-ha' with priority 10")
    active.start()
    try:
        wait_until("the low-priority replica to pause", lambda: paused(standby), timeout=60)
        assert not paused(active)
        status = get_json("kopfpeering", peering, "-n", namespace).get("status") or {}
        assert sorted(p["priority"] for p in status.values()) == [10, 20], status

        first = unique("first")
        kubectl("apply", "-f", "-", input=aiservice(first, namespace))
        wait_until(f"{first} Ready", lambda: ready(first, namespace), timeout=90)
        assert f"Deployment/{first}-triton" in applied_children(active.logs())
        assert not applied_children(standby.logs()), "the paused replica acted"

        active.kill()  # SIGKILL: no goodbye in the peering object; the standby must notice the silence
        killed = time.monotonic()
        second = unique("second")
        kubectl("apply", "-f", "-", input=aiservice(second, namespace))
        wait_until(f"{second} Ready after the takeover", lambda: ready(second, namespace), timeout=LIFETIME + 75)
        takeover = time.monotonic() - killed
        resumed = [e for e in log_lines(standby.logs())
                   if str(e.get("message", "")).startswith("Resuming operations after the pause")]
        assert resumed, "the standby never resumed"
        assert f"Deployment/{second}-triton" in applied_children(standby.logs())
        (artifacts / f"ha-{namespace}-standby" / "takeover-seconds.txt").write_text(f"{takeover:.1f}\n")
        assert standby.running()
    finally:
        active.stop()
        standby.stop()
