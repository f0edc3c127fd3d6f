"""Proves each real test service works, through the harness, on loopback only.

Run after e2e/services/install.sh:  python -m pytest e2e/services/smoke_test.py -m services

The core checks use the servers' own CLIs (psql, Kafka's TopicCommand), the Prometheus
HTTP API and redis-py (a test dependency, as the harness talks to Redis with it). Extra
checks with the other client libraries the operator uses (psycopg, confluent-kafka) run
when those are installed and are skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import redis

from harness import (
    HOST,
    Kafka,
    LoadGenerator,
    PgBouncer,
    Postgres,
    Prometheus,
    Redis,
    TritonServer,
    retarget_databases,
    wait_until,
)

pytestmark = pytest.mark.services

DB, DB_USER, DB_PASSWORD = "inference", "aifleet_app", "s3cret-pw"

# What the operator renders for a PgBouncer in front of an AIService's database; the test
# only re-aims [databases] at the local Postgres and the harness forces loopback/ports.
PGBOUNCER_INI = f"""\
[databases]
{DB} = host=postgres.aifleet.svc port=5432 dbname={DB}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
max_db_connections = 2
admin_users = {DB_USER}
ignore_startup_parameters = extra_float_digits,options
"""
USERLIST = f'"{DB_USER}" "{DB_PASSWORD}"\n'


# ------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with Postgres(tmp_path_factory.mktemp("pg"), database=DB, user=DB_USER, password=DB_PASSWORD) as pg:
        yield pg


@pytest.fixture
def pgbouncer(postgres: Postgres, tmp_path: Path) -> Iterator[PgBouncer]:
    ini = retarget_databases(PGBOUNCER_INI, postgres.host, postgres.port)
    with PgBouncer(tmp_path / "pgbouncer", ini, USERLIST) as pgb:
        yield pgb


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    with Kafka(tmp_path_factory.mktemp("kafka")) as k:
        yield k


# ----------------------------------------------------------------------- PostgreSQL

def test_postgres_accepts_password_login(postgres: Postgres) -> None:
    out = postgres.psql("SELECT current_user || ' ' || current_database()", user=DB_USER, password=DB_PASSWORD)
    assert out == f"{DB_USER} {DB}"
    # The password really is checked (scram-sha-256 over TCP), not trusted.
    with pytest.raises(Exception, match="password authentication failed"):
        postgres.psql("SELECT 1", user=DB_USER, password="wrong")
    assert postgres.psql(f"SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = '{DB_USER}'") == "SCRAM-SHA-256"


# ------------------------------------------------------------------------ PgBouncer

def client_backends(postgres: Postgres) -> int:
    """Server connections Postgres sees from the app user (i.e. opened by PgBouncer)."""
    return int(postgres.psql(
        f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{DB_USER}' AND backend_type = 'client backend'"))


def test_pgbouncer_transaction_pool_caps_server_connections(postgres: Postgres, pgbouncer: PgBouncer) -> None:
    clients, sleep_s = 20, 0.5
    env_pw = {"PGPASSWORD": DB_PASSWORD, "PGCONNECT_TIMEOUT": "10"}
    argv = ["psql", "-X", "-A", "-t", "-h", HOST, "-p", str(pgbouncer.port), "-U", DB_USER, "-d", DB,
            "-c", f"SELECT pg_sleep({sleep_s}), 'done'"]
    max_server, max_pg_backends = 0, 0
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env_pw}) for _ in range(clients)]
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() - t0 < 60:
            pool = next(r for r in pgbouncer.show("POOLS", user=DB_USER, password=DB_PASSWORD) if r["database"] == DB)
            servers = sum(int(pool[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
            max_server = max(max_server, servers)
            max_pg_backends = max(max_pg_backends, client_backends(postgres))
            time.sleep(0.2)
        results = [p.communicate(timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    elapsed = time.monotonic() - t0
    assert all(p.returncode == 0 for p in procs), [err for _, err in results if err]
    assert all(out.strip().endswith("done") for out, _ in results)
    assert 1 <= max_server <= 2, f"pgbouncer opened {max_server} server connections"
    assert max_pg_backends <= 2, f"postgres saw {max_pg_backends} app connections"
    # Cumulative, so it cannot be missed between samples: clients had to queue.
    stats = next(r for r in pgbouncer.show("STATS", user=DB_USER, password=DB_PASSWORD) if r["database"] == DB)
    assert int(stats["total_wait_time"]) > 0, "clients never queued: pooling was not exercised"
    # 20 x 0.5 s of work over at most 2 server connections cannot finish in under ~5 s.
    assert elapsed >= clients * sleep_s / 2 * 0.9


def test_pgbouncer_with_psycopg(postgres: Postgres, pgbouncer: PgBouncer) -> None:
    psycopg = pytest.importorskip("psycopg")
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            # prepare_threshold=None: PgBouncer 1.18 in transaction mode cannot route
            # server-side prepared statements, which psycopg 3 uses after 5 executions.
            with psycopg.connect(host=HOST, port=pgbouncer.port, dbname=DB, user=DB_USER, password=DB_PASSWORD,
                                 prepare_threshold=None, connect_timeout=10) as conn:
                for _ in range(10):
                    assert conn.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)
                conn.execute("SELECT pg_sleep(0.1)")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, client_backends(postgres))
        time.sleep(0.1)
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors[:3]
    assert peak <= 2


# ----------------------------------------------------------------------------- Redis

REDIS_CONF = """\
requirepass r3dis-pw
maxmemory 64mb
maxmemory-policy allkeys-lru
save ""
appendonly no
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with Redis(tmp_path_factory.mktemp("redis"), REDIS_CONF, password="r3dis-pw") as r:
        yield r


def test_redis_requires_password_and_applies_config(redis_server: Redis) -> None:
    r = redis_server
    with r.client(password=None) as anonymous, pytest.raises(redis.AuthenticationError, match="required"):
        anonymous.ping()
    with r.client(password="nope") as wrong, pytest.raises(redis.AuthenticationError):
        wrong.ping()
    with r.client() as client:
        assert client.ping() is True
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("bind") == {"bind": HOST}


def test_redis_with_redis_py_from_url(redis_server: Redis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("aifleet:k", "v", ex=60)
        assert client.get("aifleet:k") == b"v"
    finally:
        client.close()


# ----------------------------------------------------------------------------- Kafka

def test_kafka_topics_survive_broker_restart(kafka: Kafka) -> None:
    kafka.create_topic("aifleet.requests", partitions=6)
    kafka.create_topic("aifleet.requests.dlq", partitions=1, config={"retention.ms": 7 * 24 * 3600 * 1000})
    assert {"aifleet.requests", "aifleet.requests.dlq"} <= set(kafka.list_topics())

    kafka.stop()
    assert not kafka.running
    kafka.start()

    topics = kafka.describe_topics()  # one tool run for all topics
    assert {"aifleet.requests", "aifleet.requests.dlq"} <= set(topics)
    assert topics["aifleet.requests"]["PartitionCount"] == "6"
    assert "retention.ms=604800000" in topics["aifleet.requests.dlq"]["Configs"]


def test_kafka_with_confluent_admin_client(kafka: Kafka) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    topic = f"aifleet.smoke.{uuid.uuid4().hex[:8]}"
    for fut in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        fut.result(timeout=30)
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 3

    producer = ck.Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(10) == 0
    consumer = ck.Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "smoke",
                            "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline, msg = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.value() == b"hello"
    finally:
        consumer.close()
    # auto.create.topics.enable=false: producing to an unknown topic must not create it.
    assert "aifleet.nope" not in admin.list_topics(timeout=10).topics


# ---------------------------------------------------- Triton + Prometheus + loadgen

def test_prometheus_scrapes_triton_under_load(tmp_path: Path) -> None:
    labels = {"namespace": "team-a", "pod": "echo-0", "aiservice": "demo"}
    with TritonServer(tmp_path / "triton") as triton, Prometheus(tmp_path / "prom") as prom:
        assert triton.infer([1.0, 2.0]) == [1.0, 2.0]
        assert 'nv_inference_request_success{model="echo"' in triton.metrics()

        prom.set_targets("triton", [(triton.metrics_address, labels)])
        prom.wait_for_targets("triton", timeout=30)

        rate = 'sum(rate(nv_inference_request_success{aiservice="demo",model="echo"}[30s]))'
        with LoadGenerator(tmp_path / "loadgen", [triton.http_address], [(6, 40), (6, 120)]) as load:
            wait_until(lambda: (prom.query_value(rate) or 0) > 0, 30, "rate(nv_inference_request_success) > 0")
            report = load.wait()

        for step in report["steps"]:
            assert step["errors"] == 0
            assert step["achieved_rps"] >= 0.9 * step["target_rps"], step
        series = prom.query('nv_inference_request_success{model="echo"}')
        assert series and {k: series[0]["metric"][k] for k in labels} == labels
        for name in ("nv_inference_pending_request_count", "nv_inference_queue_duration_us"):
            assert prom.query(f'{name}{{aiservice="demo"}}'), name
        total = prom.query_value('max(nv_inference_request_success{aiservice="demo"})')

        # Outage: Prometheus goes away and comes back on the same TSDB.
        prom.stop()
        prom.start()
        assert prom.query_value('max(max_over_time(nv_inference_request_success{aiservice="demo"}[5m]))') == total
        prom.wait_for_targets("triton", timeout=30)

        # Targets can be removed at run time.
        prom.set_targets("triton", [])
        wait_until(lambda: not [t for t in prom.active_targets() if t["labels"].get("job") == "triton"],
                   20, "triton target removed")
