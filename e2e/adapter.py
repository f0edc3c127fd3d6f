"""prometheus-adapter (built from its Go module) on loopback, registered as the cluster's custom metrics API.

The kube-apiserver reaches it through the APIService `v1beta1.custom.metrics.k8s.io`, whose Service is an
ExternalName for `localhost`: with aggregator routing off (the default), the aggregator resolves an ExternalName
Service to `externalName:<APIService port>`, so no ClusterIP is ever dialled. The TLS server name the aggregator
checks is `<service>.<namespace>.svc`; the adapter's serving cert, from a throwaway CA given to the APIService as
its caBundle, names it. Only on the local control plane: an API server in a container cannot reach `localhost`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import harness
import yaml
from kube import build_tool, get_json, is_true, kubectl, wait_for

ROOT = Path(__file__).resolve().parents[1]
BUILD_ADAPTER = ROOT / "e2e" / "tools" / "build-adapter.sh"
RULES = ROOT / "charts" / "aifleet-operator" / "files" / "prometheus-adapter-rules.yaml"
APISERVICE = "v1beta1.custom.metrics.k8s.io"


def adapter_binary() -> str:
    return build_tool(BUILD_ADAPTER)


def serving_cert(d: Path, dns_names: list[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a serving cert for `dns_names` + 127.0.0.1 signed by it: (ca.crt, tls.crt, tls.key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=aifleet-e2e-adapter-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
            "-subj", "/CN=prometheus-adapter")
    san = ",".join([*(f"DNS:{n}" for n in dns_names), "IP:127.0.0.1"])
    (d / "tls.ext").write_text(f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                               f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n")
    openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
            f"0x{uuid.uuid4().hex}", "-days", "1", "-sha256", "-extfile", "tls.ext", "-out", "tls.crt")
    return d / "ca.crt", d / "tls.crt", d / "tls.key"


def apiservice_available() -> dict | None:
    obj = get_json("apiservice", APISERVICE)
    return obj if is_true(obj, "Available") else None


@contextlib.contextmanager
def metrics_adapter(binary: str, prometheus_url: str, state: Path) -> Iterator[harness.ManagedProcess]:
    """prometheus-adapter with the chart's rule, serving the custom metrics API of the cluster until exit."""
    state.mkdir(parents=True, exist_ok=True)
    ns = f"e2e-metrics-adapter-{uuid.uuid4().hex[:5]}"
    svc = "prometheus-adapter"
    port = harness.free_port()
    ca, crt, key = serving_cert(state, [f"{svc}.{ns}.svc", "localhost"])
    kubeconfig = os.environ["KUBECONFIG"]  # the admin identity: lists pods, reads the front-proxy CA, reviews access
    proc = harness.ManagedProcess([
        binary,
        f"--secure-port={port}", "--bind-address=127.0.0.1",
        f"--tls-cert-file={crt}", f"--tls-private-key-file={key}",
        f"--lister-kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        f"--prometheus-url={prometheus_url}",
        f"--config={RULES}",
        # Find a series a few seconds after Prometheus has it, not after upstream's default 10 minutes.
        "--metrics-relist-interval=5s", "--metrics-max-age=1m",
        "--v=2",
    ], state / "adapter.log")
    proc.start()
    try:
        harness.wait_until(lambda: harness.port_open(port), 60, "prometheus-adapter serving", proc)
        kubectl("create", "namespace", ns)
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc, "namespace": ns},
             # No ClusterIP, no endpoints: the aggregator dials localhost:<port> itself.
             "spec": {"type": "ExternalName", "externalName": "localhost",
                      "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
             "spec": {"group": "custom.metrics.k8s.io", "version": "v1beta1",
                      "service": {"name": svc, "namespace": ns, "port": port},
                      "caBundle": base64.b64encode(ca.read_bytes()).decode(),
                      "groupPriorityMinimum": 100, "versionPriority": 100}},
        ]))
        wait_for("the APIService to be Available", apiservice_available, timeout=60)
        yield proc
    except BaseException:
        print(proc.log_tail(60))
        raise
    finally:
        # The APIService goes first: an unavailable aggregated API would stall namespace deletion cluster-wide.
        kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
        proc.stop(timeout=10)
