"""PostgreSQL down behind PgBouncer on real pods: the AIService says so, and recovers when it returns.

PgBouncer's probes are TCP, so its pods stay ready while the database behind it is away. The operator (a process
on this machine, where kube-proxy routes ClusterIPs) logs in through the pooler's Service and runs `SELECT 1`; this
test stops and kills the real PostgreSQL process the pool's pods use, and reads what the AIService says.
"""

from __future__ import annotations

import signal
import socket
import time

import harness
import pytest
import yaml
from kube import get_json, kubectl, wait_for
from realnode import conditions, events, models_directory, models_volume, real_aiservice, service_ip, wait_ready

DB, USER, PASSWORD = "orders", "app", "s3cret-for-the-pool"


@pytest.fixture
def postgres(real_node, tmp_path):
    """A real PostgreSQL of this test's own (it is stopped and killed), listening on the node's bridge address."""
    with harness.Postgres(tmp_path / "pg", database=DB, user=USER, password=PASSWORD,
                          extra_listen=[real_node.ip], client_networks=[real_node.pod_network]) as pg:
        yield pg


def _pooler(name: str, namespace: str) -> tuple[dict, dict]:
    ais = get_json("aiservice", name, "-n", namespace) or {}
    return ((ais.get("status") or {}).get("components") or {}).get("pooler") or {}, conditions(ais).get("PoolerReady", {})


def _reaches(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=2):
            return True
    except OSError:
        return False


def test_postgresql_stopped_and_killed_behind_pgbouncer_is_reported_and_recovers(
        operator, node_prometheus, real_node, real_namespace, postgres):
    namespace, name = real_namespace, "ledger"
    kubectl("create", "secret", "generic", "ledger-db", "-n", namespace, f"--from-literal=password={PASSWORD}")
    manifest = real_aiservice(name, namespace, prometheus=node_prometheus.url)
    manifest["spec"]["pgbouncer"] = {
        "databaseHost": real_node.ip, "databasePort": postgres.port, "databaseName": DB, "user": USER,
        "passwordSecretRef": {"name": "ledger-db", "key": "password"}, "replicas": 2,
        "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    database = f"{real_node.ip}:{postgres.port}"
    with models_volume(real_node, namespace, models_directory(real_node.volumes / namespace)):
        kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        wait_ready(name, namespace, timeout=300)
        # The operator checks through the ClusterIP, as from any host process here.
        ip = service_ip(f"{name}-pgbouncer", namespace)
        wait_for(f"the pooler Service {ip}:5432 to answer from this machine", lambda: _reaches(ip, 5432), timeout=30)

        def pooler_ready() -> tuple[dict, dict] | None:
            # The AIService is Ready with one pooler pod serving; both pods are wanted here. The first check may run
            # before kube-proxy routes the new Service: the operator says "could not run" only when the next, 5 s
            # later, cannot reach it either (the pods' state stands meanwhile).
            state, condition = _pooler(name, namespace)
            ready = state.get("state") == "Ready" and condition.get("status") == "True"
            return (state, condition) if ready and "could not run" not in state["message"] else None

        wait_for("the pooler Ready with both pods and its database check passing", pooler_ready, timeout=60, interval=1)

        for how, stop in (("stopped", postgres.stop), ("killed", lambda: postgres.process.stop(signal.SIGKILL))):
            stopped = time.monotonic()
            stop()

            def degraded() -> tuple[dict, dict] | None:
                state, condition = _pooler(name, namespace)
                return (state, condition) if state.get("state") == "Degraded" else None

            state, condition = wait_for(f"the pooler Degraded with PostgreSQL {how}", degraded, timeout=90, interval=1)
            print(f"\nPostgreSQL {how}: Degraded after {time.monotonic() - stopped:.1f} s: {state['message']}")
            assert f"the database at {database}" in state["message"], state
            assert condition["status"] == "False" and condition["reason"] == "Degraded", condition
            assert condition["message"] == state["message"]
            ais = get_json("aiservice", name, "-n", namespace)
            assert conditions(ais)["Ready"]["status"] == "False" and conditions(ais)["Degraded"]["status"] == "True"
            # The pods are still ready: only the check through them knows.
            deployment = get_json("deployment", f"{name}-pgbouncer", "-n", namespace)
            assert deployment["status"].get("readyReplicas") == 2, deployment["status"]

            postgres.start()
            started = time.monotonic()

            def recovered() -> dict | None:
                state, condition = _pooler(name, namespace)
                return state if state.get("state") == "Ready" and condition.get("status") == "True" else None

            # PgBouncer retries its server every server_login_retry (15 s), the check every 5 s while failing.
            wait_for(f"the pooler Ready with PostgreSQL started after it was {how}", recovered, timeout=60, interval=1)
            print(f"PostgreSQL {how}: Ready {time.monotonic() - started:.1f} s after it started")
            wait_ready(name, namespace, timeout=30)

        said = [(e["type"], e["reason"], e["message"]) for e in events(namespace, name)]
        warnings = [s for s in said if s[1] == "PoolerDegraded"]
        recoveries = [s for s in said if s[1] == "PoolerRecovered"]
        print("events:", *warnings, *recoveries, sep="\n  ")
        assert warnings and all(t == "Warning" and f"the database at {database}" in m for t, _, m in warnings), said
        assert recoveries and all(t == "Normal" and database in m for t, _, m in recoveries), said
        for _, _, message in said:
            assert PASSWORD not in message
        assert PASSWORD not in operator.logs()
