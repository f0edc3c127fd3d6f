"""PgBouncer and Redis on real pods: the rendered Deployments and StatefulSet run unchanged on the real node, and a
client pod reaches them by their Service DNS names, as an API pod of the fleet would: through PgBouncer to a real
PostgreSQL on this machine, and to Redis with the password aifleet generated.
"""

from __future__ import annotations

import json

import harness
import pytest
import yaml
from kube import get_json, kubectl, wait_for
from realnode import models_directory, models_volume, real_aiservice, wait_ready

DB, USER, PASSWORD = "orders", "app", "s3cret-for-the-pool"
CLIENT_IMAGE = "aifleet.dev/e2e-client:1"


@pytest.fixture
def namespace(real_namespace):
    return real_namespace


@pytest.fixture(scope="module")
def postgres(real_node, tmp_path_factory):
    """A real PostgreSQL on this machine that also listens on the node's bridge address for the pool's pods."""
    with harness.Postgres(tmp_path_factory.mktemp("pg-real"), database=DB, user=USER, password=PASSWORD,
                          extra_listen=[real_node.ip], client_networks=[real_node.pod_network]) as pg:
        yield pg


def client_pod(name: str, namespace: str, script: str, env_from: list[dict], env: list[dict]) -> dict:
    """A short-lived pod that passes the restricted Pod Security Standard and runs `script`."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": CLIENT_IMAGE, "imagePullPolicy": "Never",
                "command": ["sh", "-ec", script], "envFrom": env_from, "env": env,
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def run_to_completion(manifest: dict, timeout: float = 120) -> str:
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def finished() -> str | None:
        phase = ((get_json("pod", name, "-n", namespace) or {}).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(f"client pod {name} to finish", finished, timeout=timeout, interval=1)
    logs = kubectl("logs", name, "-n", namespace)
    assert phase == "Succeeded", logs
    return logs


def test_client_pod_reaches_postgres_through_pgbouncer_and_redis_by_service_name(
        operator, node_prometheus, real_node, namespace, postgres, tmp_path):
    kubectl("create", "secret", "generic", "orders-db", "-n", namespace, f"--from-literal=password={PASSWORD}")
    directory = models_directory(real_node.volumes / namespace)
    small = {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    manifest = real_aiservice("shop", namespace, prometheus=node_prometheus.url)
    manifest["spec"]["pgbouncer"] = {
        "databaseHost": real_node.ip, "databasePort": postgres.port, "databaseName": DB, "user": USER,
        "passwordSecretRef": {"name": "orders-db", "key": "password"}, "replicas": 2, "resources": small,
    }
    manifest["spec"]["redis"] = {"maxMemory": "64mb", "resources": small}
    with models_volume(real_node, namespace, directory):
        kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        ais = wait_ready("shop", namespace, timeout=300)
        endpoints = ais["status"]["endpoints"]
        pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
        by_component = {}
        for pod in pods:
            by_component.setdefault(pod["metadata"]["labels"].get("app.kubernetes.io/component"), []).append(pod)
        assert len(by_component.get("pgbouncer", [])) == 2 and len(by_component.get("redis", [])) == 1, by_component
        assert {p["spec"]["nodeName"] for p in pods} == {real_node.name}

        pooler_host = endpoints["pooler"].rsplit(":", 1)[0]
        cache_host, cache_port = endpoints["cache"].rsplit(":", 1)
        assert pooler_host.endswith(f".{namespace}.svc") and cache_host.endswith(f".{namespace}.svc"), endpoints
        script = (
            'psql "$uri" -tAc "select 40 + 2"\n'
            'psql "$uri" -tAc "select current_user || \'@\' || current_database()"\n'
            f'redis-cli --no-auth-warning -h {cache_host} -p {cache_port} set greeting hello\n'
            f'redis-cli --no-auth-warning -h {cache_host} -p {cache_port} get greeting\n'
            # Without the password Redis refuses.
            f'env -u REDISCLI_AUTH redis-cli -h {cache_host} -p {cache_port} get greeting 2>&1 || true\n'
        )
        logs = run_to_completion(client_pod("client", namespace, script,
                                            env_from=[{"secretRef": {"name": endpoints["poolerSecret"]}}],
                                            env=[{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {
                                                "name": endpoints["cacheSecret"], "key": "password"}}}]))
        lines = logs.splitlines()
        print(f"\nclient pod output:\n{logs}")
        assert lines[0] == "42" and lines[1] == f"{USER}@{DB}", lines
        assert lines[2] == "OK" and lines[3] == "hello", lines
        assert "NOAUTH" in lines[4], lines
        # The pool really pooled: PgBouncer's server connections reached PostgreSQL from the pods' network.
        clients = postgres.psql("select count(*) from pg_stat_activity where "
                                f"client_addr <<= '{real_node.pod_network}'::inet and datname = '{DB}'",
                                database="postgres")
        assert int(clients.strip()) >= 1, clients
