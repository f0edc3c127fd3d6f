"""The fault matrix, injected for real while the operator runs (README, "Testing: the fault matrix").

* kube-apiserver paused (SIGSTOP, then SIGCONT: it resumes exactly where it was): readiness turns false, the
  operator says so in one line and no traceback, and on return every AIService converges: the change made just
  before the outage applied, an AIService created just before it complete, no generated Secret made twice, the
  status of the latest generation.
* etcd paused the same way: the API server answers 5xx and times out instead of not answering at all.
* A child the API server refuses (a ValidatingAdmissionPolicy in the test's namespace refuses Triton's
  Deployment): the AIService is Degraded naming the child and the policy's message; removing the policy heals it.
* Racing writers on the Deployment aifleet owns and on the AIService's status: the final state is the spec's.
* A flood of 100 spec updates in about 10 s: the operator converges to the last one with a bounded number of
  writes, counted by its own `aifleet_api_requests_total`.

The outage tests need the local control plane (e2e/cluster/up.sh: its components' pid files); on another cluster
(kind) they are skipped, saying why. Each runs its own operator (namespaces `e2e-own-*`, out of the suite
operator's way) with its health and metrics ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chart_support import ROOT, log_lines, namespaces, wait_until
from harness.net import free_port, http_get_text
from kube import condition, get_json, is_true, kubectl
from operator_process import OperatorProcess
from realnode import cluster_env

OUTAGE_SECONDS = 25  # under the node-monitor grace period: the nodes must not be marked NotReady meanwhile
WATCHDOG_SECONDS = 90  # resumes a paused component even if this test process dies


# --- the processes of the local control plane ----------------------------------------------------------------


def cluster_dir() -> Path:
    return Path(cluster_env().get("AIFLEET_CLUSTER_DIR") or ROOT / "e2e" / ".cluster")


def component_pid(name: str) -> int:
    """The pid of a control-plane component up.sh started (its pid file), checked to be that process (its command
    line names the cluster's state dir, as e2e/cluster/lib.sh's is_ours does)."""
    state = cluster_dir()
    pid_file = state / "pids" / f"{name}.pid"
    if not pid_file.exists():
        pytest.skip(f"no {pid_file}: this cluster was not started by e2e/cluster/up.sh, its processes cannot be paused")
    pid = int(pid_file.read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    assert f"{state}/" in cmdline, f"pid {pid} of {pid_file} is not {name} of this cluster: {cmdline[:200]}"
    return pid


@contextlib.contextmanager
def paused(name: str) -> Iterator[int]:
    """SIGSTOP the component for the block, SIGCONT after; a detached watchdog resumes it even if we die."""
    pid = component_pid(name)
    watchdog = subprocess.Popen(["sh", "-c", f"sleep {WATCHDOG_SECONDS}; kill -CONT {pid}"], start_new_session=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
        os.killpg(watchdog.pid, signal.SIGKILL)  # its own session: the shell and its sleep
        watchdog.wait(timeout=10)
    wait_until(f"{name} to answer again", lambda: kubectl("get", "--raw", "/readyz", check=False).strip() == "ok",
               timeout=60)


# --- an operator of the test's own ---------------------------------------------------------------------------


class OwnOperator:
    def __init__(self, namespace: str, artifacts: Path, label: str) -> None:
        self.health_port, self.metrics_port = free_port(), free_port()
        self.proc = OperatorProcess(artifacts / f"faults-{label}-{namespace}", metrics_port=self.metrics_port,
                                    extra_args=["-n", namespace, "--health-port", str(self.health_port)])

    def readiness(self) -> tuple[int, dict]:
        code, body = http_get_text(f"http://127.0.0.1:{self.health_port}/readyz", timeout=3)
        try:
            return code, json.loads(body)
        except ValueError:
            return code, {}

    def requests(self) -> dict[tuple[str, str], float]:
        """aifleet_api_requests_total by (verb, code), from the operator's /metrics."""
        code, text = http_get_text(f"http://127.0.0.1:{self.metrics_port}/metrics")
        assert code == 200, text
        out: dict[tuple[str, str], float] = {}
        for match in re.finditer(r'^aifleet_api_requests_total\{code="(\d+)",verb="(\w+)"\} (\S+)$', text, re.M):
            out[(match.group(2), match.group(1))] = float(match.group(3))
        return out

    def writes(self) -> float:
        return sum(v for (verb, code), v in self.requests().items() if verb in ("post", "patch", "put", "delete")
                   and code.startswith("2"))

    def log(self) -> list[dict]:
        return log_lines(self.proc.logs())


@contextlib.contextmanager
def own_operator(namespace: str, artifacts: Path, label: str) -> Iterator[OwnOperator]:
    own = OwnOperator(namespace, artifacts, label)
    own.proc.start()
    try:
        wait_until("the operator ready", lambda: own.readiness()[0] == 200, timeout=60)
        yield own
    finally:
        own.proc.stop()


def aiservice(name: str, namespace: str, **spec) -> str:
    manifest = yaml.safe_load((ROOT / "examples" / "minimal.yaml").read_text())
    manifest["metadata"].update(name=name, namespace=namespace)
    manifest["spec"].update(spec)
    return yaml.safe_dump(manifest)


def ready(name: str, namespace: str) -> dict | None:
    obj = get_json("aiservice", name, "-n", namespace)
    return obj if is_true(obj, "Ready") else None


def converged(name: str, namespace: str) -> dict | None:
    """Ready and reporting the AIService's current generation."""
    obj = ready(name, namespace)
    status = (obj or {}).get("status") or {}
    return obj if obj and status.get("observedGeneration") == obj["metadata"]["generation"] else None


def triton_cpu(name: str, namespace: str) -> str | None:
    deployment = get_json("deployment", f"{name}-triton", "-n", namespace) or {}
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    return ((containers[0].get("resources") or {}).get("requests") or {}).get("cpu")


def cpu_patch(millicores: int) -> str:
    return json.dumps({"spec": {"inference": {"resources": {"requests": {"cpu": f"{millicores}m", "memory": "1Gi"},
                                                            "limits": {"memory": "2Gi"}}}}})


def tracebacks(entries: list[dict]) -> list[dict]:
    return [e for e in entries if "exception" in e or "Traceback" in str(e.get("raw", ""))]


# --- the API server and etcd away ----------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_outage_readiness_one_line_and_convergence(crd, artifacts, component):
    component_pid(component)  # skip early on a cluster that is not ours
    with namespaces("faults") as (namespace,), own_operator(namespace, artifacts, component) as own:
        kubectl("apply", "-f", "-", input=aiservice("before", namespace, redis={"maxMemory": "64mb"}))
        wait_until("before Ready", lambda: converged("before", namespace), timeout=120)
        password = get_json("secret", "before-redis-auth", "-n", namespace)
        assert password is not None, "the generated Redis password Secret is missing"

        # A change and a new AIService right before the outage: the operator is at work when it starts.
        kubectl("patch", "aiservice", "before", "-n", namespace, "--type=merge", "-p", cpu_patch(300))
        kubectl("apply", "-f", "-", input=aiservice("during", namespace, redis={"maxMemory": "64mb"}))
        def unready() -> dict | None:
            code, body = own.readiness()
            return body if code == 503 else None

        with paused(component):
            paused_at = time.monotonic()
            body = wait_until("readiness false", unready, timeout=OUTAGE_SECONDS)
            assert body["checks"]["apiserver"]["ok"] is False, body
            # The outage goes on; the operator keeps failing and keeps quiet about it.
            time.sleep(max(0.0, paused_at + OUTAGE_SECONDS - time.monotonic()))
            assert own.proc.running(), own.proc.logs()[-3000:]
            assert unready() is not None

        wait_until("readiness true again", lambda: own.readiness()[0] == 200, timeout=90)
        before = wait_until("before converged to the change made before the outage",
                            lambda: converged("before", namespace) if triton_cpu("before", namespace) == "300m" else None,
                            timeout=120)
        during = wait_until("during Ready", lambda: converged("during", namespace), timeout=120)
        assert before["status"]["conditions"] and during["status"]["conditions"]

        # No duplicate: the generated password was not made again (same object, same key).
        again = get_json("secret", "before-redis-auth", "-n", namespace)
        assert (again["metadata"]["uid"], again["data"]) == (password["metadata"]["uid"], password["data"])
        secrets = json.loads(kubectl("get", "secrets", "-n", namespace, "-l", "app.kubernetes.io/instance=during",
                                     "-o", "json"))["items"]
        generated = [s for s in secrets if (s["metadata"].get("annotations") or {}).get("aifleet.dev/generated")]
        # One of each generated Secret (the Redis password, the Triton admin key), none made twice under another name.
        assert sorted(s["metadata"]["name"] for s in generated) == ["during-redis-auth", "during-triton-admin"], [
            s["metadata"]["name"] for s in secrets]
        for name in ("before", "during"):
            assert len(json.loads(kubectl("get", "deployments", "-n", namespace, "-l",
                                          f"app.kubernetes.io/instance={name},app.kubernetes.io/component=triton",
                                          "-o", "json"))["items"]) == 1

        entries = own.log()
        assert not tracebacks(entries), tracebacks(entries)[:3]
        down = [e for e in entries if str(e.get("message", "")).startswith("the API server does not answer")]
        back = [e for e in entries if str(e.get("message", "")).startswith("the API server answers again")]
        assert len(down) == 1 and len(back) == 1, [e.get("message") for e in down + back]
        (artifacts / f"outage-{component}.json").write_text(json.dumps({"down": down, "back": back}, indent=1))
        assert own.proc.running()


# --- a child the API server refuses --------------------------------------------------------------------------


def refusing_policy(name: str, namespace: str, child: str) -> str:
    """A ValidatingAdmissionPolicy and its binding that refuse one Deployment in one namespace."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                    "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
            "validations": [{"expression": f"object.metadata.name != '{child}'",
                             "message": "the platform team does not allow this Deployment here"}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}},
    }
    return yaml.safe_dump_all([policy, binding])


def test_a_refused_child_is_reported_on_the_aiservice_and_heals(operator, namespace):
    name, child = "refused", "refused-triton"
    policy = f"aifleet-e2e-{namespace}"[:63]
    kubectl("apply", "-f", "-", input=refusing_policy(policy, namespace, child))
    try:
        # Policies take effect a moment after they are created: wait until the API server refuses a dry run.
        wait_until("the policy in force", lambda: "does not allow" in kubectl(
            "create", "deployment", child, "--image=registry.k8s.io/pause:3.10", "-n", namespace,
            "--dry-run=server", check=False), timeout=60)
        kubectl("apply", "-f", "-", input=aiservice(name, namespace))
        obj = wait_until("InferenceReady False naming the refused Deployment", lambda: (
            o := get_json("aiservice", name, "-n", namespace)) and (c := condition(o, "InferenceReady"))
            and c["status"] == "False" and f"the API server refused Deployment {child}" in c["message"] and o,
            timeout=90)
        inference = condition(obj, "InferenceReady")
        assert "the platform team does not allow this Deployment here" in inference["message"], inference
        assert is_true(obj, "Degraded") and not is_true(obj, "Ready")
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
        assert get_json("service", child, "-n", namespace) is not None  # the other children went on
        events = kubectl("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
        assert "InferenceDegraded" in events and "does not allow" in events
    finally:
        kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", policy, check=False)
    # The policy gone, the operator's next look (it re-checks a refused child on its own) creates the Deployment.
    wait_until("Ready once the policy is gone", lambda: ready(name, namespace), timeout=120)
    assert get_json("deployment", child, "-n", namespace) is not None


# --- racing writers ------------------------------------------------------------------------------------------


def test_racing_writers_on_the_deployment_and_the_status_end_in_the_specs_state(crd, artifacts):
    with namespaces("race") as (namespace,), own_operator(namespace, artifacts, "race") as own:
        name = "race"
        kubectl("apply", "-f", "-", input=aiservice(name, namespace))
        wait_until("Ready", lambda: converged(name, namespace), timeout=120)
        deployment = get_json("deployment", f"{name}-triton", "-n", namespace)
        spec_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        stop = threading.Event()
        landed = {"deployment": 0, "status": 0}

        def racer(what: str, args: list[str]) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                out = subprocess.run(["kubectl", *[a.replace("{i}", str(i)) for a in args]], capture_output=True,
                                     text=True, timeout=30)
                landed[what] += out.returncode == 0

        racers = [
            threading.Thread(target=racer, args=("deployment", [
                "set", "image", f"deployment/{name}-triton", "-n", namespace, "triton=racer.invalid/triton:{i}"])),
            threading.Thread(target=racer, args=("status", [
                "patch", "aiservice", name, "-n", namespace, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Racer",
                                                       "message": "written by another writer {i}",
                                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})])),
        ]
        for thread in racers:
            thread.start()
        try:
            for cpu in range(200, 215):  # the spec moves while the racers write
                kubectl("patch", "aiservice", name, "-n", namespace, "--type=merge", "-p", cpu_patch(cpu))
                time.sleep(1)
        finally:
            stop.set()
            for thread in racers:
                thread.join(timeout=60)
        assert landed["deployment"] > 0 and landed["status"] > 0, landed  # the race really happened

        def settled() -> dict | None:
            obj = converged(name, namespace)
            deployment = get_json("deployment", f"{name}-triton", "-n", namespace) or {}
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            ok = (obj and container["image"] == spec_image and triton_cpu(name, namespace) == "214m"
                  and condition(obj, "Ready")["reason"] != "Racer")
            return obj if ok else None

        obj = wait_until("the spec's state back on the Deployment and the status", settled, timeout=120)
        assert {c["type"] for c in obj["status"]["conditions"]} >= {"Ready", "Progressing", "Degraded", "InferenceReady"}
        conflicts = sum(v for (_, code), v in own.requests().items() if code == "409")
        (artifacts / "race.json").write_text(json.dumps({"landed": landed, "conflicts_seen": conflicts}))
        assert not tracebacks(own.log())


# --- a flood of spec updates ---------------------------------------------------------------------------------


def test_a_flood_of_spec_updates_converges_to_the_last_with_bounded_writes(crd, artifacts):
    import kubernetes

    updates = 100
    with namespaces("flood") as (namespace,), own_operator(namespace, artifacts, "flood") as own:
        name = "flood"
        kubectl("apply", "-f", "-", input=aiservice(name, namespace))
        wait_until("Ready", lambda: converged(name, namespace), timeout=120)
        time.sleep(3)  # let the first passes' writes land before counting
        before = own.writes()

        kubernetes.config.load_kube_config()
        api = kubernetes.client.CustomObjectsApi()
        started = time.monotonic()
        for i in range(updates):
            api.patch_namespaced_custom_object("aifleet.dev", "v1alpha1", namespace, "aiservices", name,
                                               json.loads(cpu_patch(100 + i)))
            time.sleep(max(0.0, started + (i + 1) * 0.1 - time.monotonic()))  # 100 in about 10 s
        sent_in = time.monotonic() - started
        last = f"{100 + updates - 1}m"

        wait_until(f"the last update ({last}) on the Deployment and the status at the last generation",
                   lambda: converged(name, namespace) if triton_cpu(name, namespace) == last else None, timeout=120)
        time.sleep(3)  # any write still in flight lands in the count
        writes = own.writes() - before
        (artifacts / "flood.json").write_text(json.dumps({"updates": updates, "seconds": round(sent_in, 1),
                                                          "writes": writes}))
        # Each update changes one child (the Deployment) and the status (the new generation), and the rollout it
        # starts changes the status again as its pods come and go: a pass per change would write three times per
        # update. Passes cover every change since the last one, so there are fewer (measured: 1.8 to 2.2 per update).
        assert 1 <= writes <= 3 * updates, writes
