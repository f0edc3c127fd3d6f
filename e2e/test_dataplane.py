"""The data plane, proven against the real servers: what aifleet renders runs in a real PgBouncer 1.18 in front
of a real PostgreSQL 15 (scram-sha-256), a real redis-server 7, and the topic sync works on a real KRaft broker.

Only what cannot run on loopback is changed in the rendered files: listen address/port, file paths, and (for
PgBouncer) the target, which the spec itself points at the loopback PostgreSQL. The harness forces those.
Needs e2e/services/install.sh; test clients: psycopg 3 (PostgreSQL), confluent-kafka (the operator's own).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import AuthenticationError

from aifleet.api import AIService
from aifleet.api.children import names
from aifleet.api.data import KafkaSpec, parse_maxmemory
from aifleet.clients.kafka import BROKER_UNAVAILABLE, TIMEOUT, KafkaAdmin
from aifleet.renderer.pgbouncer import render_pgbouncer
from aifleet.renderer.redis import render_redis
from aifleet.topics.apply import delete_topics, owned_topics, sync_topics

sys.path.insert(0, str(Path(__file__).resolve().parent / "services"))
import harness  # noqa: E402

pytestmark = pytest.mark.services

DB, USER = "orders", "app"
# Quotes, a backslash, a space and URL-special characters: the rendered files must carry it exactly.
PASSWORD = 'p"w\\ d@:/%x'


def _ais(**spec: Any) -> AIService:
    return AIService.model_validate(
        {
            "metadata": {"name": "shop", "namespace": "prod"},
            "spec": {"inference": {"modelRepository": {"uri": "s3://models/shop"}}, **spec},
        }
    )


def _secret_files(manifests: list[dict], name: str) -> dict[str, str]:
    secret = next(m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == name)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


# --------------------------------------------------------------------------------------------- PgBouncer


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pg = harness.Postgres(
        tmp_path_factory.mktemp("pg"), database=DB, user=USER, password=PASSWORD,
        password_encryption="scram-sha-256", settings={"max_connections": 100},
    )
    with pg:
        yield pg


def _pgbouncer_files(pg: harness.Postgres, **overrides: Any) -> dict[str, str]:
    spec = {
        "databaseHost": pg.host, "databasePort": pg.port, "databaseName": DB, "user": USER,
        "passwordSecretRef": {"name": "db", "key": "password"},
        "poolMode": "transaction", "defaultPoolSize": 4, "reservePoolSize": 1, "reservePoolTimeoutSeconds": 1,
        "maxClientConn": 200, **overrides,
    }
    ais = _ais(pgbouncer=spec)
    return _secret_files(render_pgbouncer(ais, PASSWORD), names(ais).pgbouncer_config)


class PoolWatcher(threading.Thread):
    """Samples SHOW POOLS on the console and pg_stat_activity on the server while clients run."""

    def __init__(self, bouncer: harness.PgBouncer, pg: harness.Postgres) -> None:
        super().__init__(daemon=True)
        self.bouncer, self.pg = bouncer, pg
        self.stop = threading.Event()
        self.max_server = self.max_clients = self.max_waiting = self.max_backends = 0
        self.pool_modes: set[str] = set()
        self.samples = 0

    def run(self) -> None:
        console = psycopg.connect(
            host=harness.HOST, port=self.bouncer.port, dbname="pgbouncer", user=USER, password=PASSWORD,
            autocommit=True, prepare_threshold=None,
        )
        server = psycopg.connect(host=harness.HOST, port=self.pg.port, dbname=DB, user=USER, password=PASSWORD,
                                 autocommit=True)
        try:
            while not self.stop.is_set():
                cur = console.cursor()
                cur.execute("SHOW POOLS")
                cols = [c.name for c in cur.description]
                for row in (dict(zip(cols, r)) for r in cur.fetchall()):
                    if row["database"] != DB:
                        continue
                    servers = sum(int(row[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
                    self.max_server = max(self.max_server, servers)
                    self.max_clients = max(self.max_clients, int(row["cl_active"]) + int(row["cl_waiting"]))
                    self.max_waiting = max(self.max_waiting, int(row["cl_waiting"]))
                    self.pool_modes.add(row["pool_mode"])
                # Backends that PgBouncer opened (our own watcher connection is excluded by pid).
                backends = server.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s"
                    " AND pid <> pg_backend_pid()", (DB, USER),
                ).fetchone()[0]
                self.max_backends = max(self.max_backends, backends)
                self.samples += 1
                time.sleep(0.02)
        finally:
            console.close()
            server.close()


def _run_clients(port: int, clients: int, transactions: int, hold_together: bool) -> list[int]:
    """`clients` connections, each running short transactions; returns the server pids they were served by."""
    pids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    # In transaction mode all clients stay connected at once: that is what pooling is for.
    barrier = threading.Barrier(clients) if hold_together else None

    def client() -> None:
        try:
            with psycopg.connect(host=harness.HOST, port=port, dbname=DB, user=USER, password=PASSWORD,
                                 prepare_threshold=None, connect_timeout=30) as conn:
                if barrier:
                    barrier.wait(timeout=60)
                for _ in range(transactions):
                    with conn.transaction():
                        pid = conn.execute("SELECT pg_backend_pid(), pg_sleep(0.03)").fetchone()[0]
                    with lock:
                        pids.append(pid)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"{len(errors)} clients failed, first: {errors[0]!r}"
    assert len(pids) == clients * transactions
    return pids


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_rendered_pgbouncer_pools_60_clients_into_the_configured_pool(postgres, tmp_path, pool_mode):
    files = _pgbouncer_files(postgres, poolMode=pool_mode)
    assert f"pool_mode = {pool_mode}" in files["pgbouncer.ini"]
    pool, reserve, clients = 4, 1, 60
    with harness.PgBouncer(tmp_path / "pgb", files["pgbouncer.ini"], files["userlist.txt"]) as bouncer:
        watcher = PoolWatcher(bouncer, postgres)
        watcher.start()
        try:
            pids = _run_clients(bouncer.port, clients, transactions=5, hold_together=pool_mode == "transaction")
        finally:
            watcher.stop.set()
            watcher.join(timeout=10)
        print(
            f"\n{pool_mode}: {clients} clients x 5 transactions served by {len(set(pids))} server backends;"
            f" SHOW POOLS max servers {watcher.max_server}, max clients {watcher.max_clients},"
            f" max waiting {watcher.max_waiting}; pg_stat_activity max {watcher.max_backends}"
            f" ({watcher.samples} samples)"
        )
        assert watcher.samples >= 5
        assert watcher.pool_modes == {pool_mode}
        assert len(set(pids)) <= pool + reserve
        assert watcher.max_server <= pool + reserve
        assert watcher.max_backends <= pool + reserve
        if pool_mode == "transaction":
            # All 60 were connected at once, and some had to queue for one of the few server connections.
            assert watcher.max_clients >= clients
            assert watcher.max_waiting > 0


def _scram_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(hashlib.sha256(client_key).digest())}:{b64(server_key)}"


@pytest.mark.parametrize(
    "secret_kind", ["plain (rendered)", "scram verifier, own salt", "md5 hash"],
)
def test_only_the_plain_password_reaches_a_scram_postgres(postgres, tmp_path, secret_kind):
    """Why userlist.txt holds the plain password: the alternatives cannot log in to PostgreSQL 15 with SCRAM."""
    files = _pgbouncer_files(postgres)
    userlist = {
        "plain (rendered)": files["userlist.txt"],
        "scram verifier, own salt": f'"{USER}" "{_scram_verifier(PASSWORD, os.urandom(16))}"\n',
        "md5 hash": f'"{USER}" "md5{hashlib.md5((PASSWORD + USER).encode()).hexdigest()}"\n',
    }[secret_kind]
    with harness.PgBouncer(tmp_path / "pgb", files["pgbouncer.ini"], userlist) as bouncer:
        try:
            with psycopg.connect(host=harness.HOST, port=bouncer.port, dbname=DB, user=USER, password=PASSWORD,
                                 connect_timeout=10) as conn:
                answer = conn.execute("SELECT current_user").fetchone()[0]
            outcome = f"ok as {answer}"
        except psycopg.OperationalError as exc:
            outcome = f"refused: {str(exc).strip().splitlines()[-1]}"
        log = bouncer.log_text()
    print(f"\n{secret_kind}: {outcome}")
    if secret_kind == "plain (rendered)":
        assert outcome == f"ok as {USER}"
    elif secret_kind == "scram verifier, own salt":
        # PgBouncer accepted the client, then PostgreSQL refused PgBouncer: the salts differ.
        assert outcome.startswith("refused")
        assert "server login failed: FATAL password authentication failed" in log
    else:
        # An md5 hash cannot check a SCRAM client proof, nor answer the server's SCRAM challenge.
        assert outcome.startswith("refused")
        assert "user has MD5 secret" in log


def test_rendered_pgbouncer_refuses_a_wrong_password(postgres, tmp_path):
    files = _pgbouncer_files(postgres)
    with harness.PgBouncer(tmp_path / "pgb", files["pgbouncer.ini"], files["userlist.txt"]) as bouncer:
        with pytest.raises(psycopg.OperationalError, match="SASL authentication failed"):
            psycopg.connect(host=harness.HOST, port=bouncer.port, dbname=DB, user=USER, password="wrong",
                            connect_timeout=10)


def test_the_database_check_through_pgbouncer_sees_postgresql_stop_and_return(tmp_path):
    """What the operator's check (clients/dbcheck.py) gets from a real PgBouncer with the rendered ini when the
    PostgreSQL behind it is stopped, killed, and started again: never a false "ok", never a long wait."""
    from pydantic import SecretStr

    from aifleet.api.dbcheck import CheckTarget
    from aifleet.clients.dbcheck import check

    pg = harness.Postgres(tmp_path / "pg", database=DB, user=USER, password=PASSWORD)
    with pg:
        files = _pgbouncer_files(pg)
        with harness.PgBouncer(tmp_path / "pgb", files["pgbouncer.ini"], files["userlist.txt"]) as bouncer:
            target = CheckTarget(host=harness.HOST, port=bouncer.port, database=DB, user=USER,
                                 password=SecretStr(PASSWORD), server=f"{pg.host}:{pg.port}")

            def timed() -> tuple[str, str, float]:
                started = time.monotonic()
                result = check(target)
                assert PASSWORD not in result.error
                return result.outcome, result.error, time.monotonic() - started

            assert timed()[0] == "ok"
            for stop in (pg.stop, lambda: pg.process.stop(signal.SIGKILL)):
                stop()
                seen = [timed() for _ in range(3)]
                print(f"\nPostgreSQL stopped: {seen}")
                assert all(outcome in ("refused", "no_answer") and seconds < 8 for outcome, _, seconds in seen), seen
                # After its first failed server login, PgBouncer answers every login at once with this.
                assert seen[-1][:2] == ("refused", "server login has been failing, try again later (server_login_retry)")
                pg.start()
                started = time.monotonic()
                while (outcome := timed())[0] != "ok":
                    assert outcome[0] == "refused" and time.monotonic() - started < 30, outcome
                    time.sleep(1)
                # PgBouncer retries its server every server_login_retry (15 s): the check sees the return then.
                print(f"ok again {time.monotonic() - started:.1f} s after PostgreSQL started")
            bouncer.stop()
            outcome, error, seconds = timed()
            assert outcome == "unreachable" and seconds < 5, (outcome, error)


# ------------------------------------------------------------------------------------------------- Redis


@pytest.mark.parametrize("persistent", [False, True], ids=["cache", "persistent"])
def test_rendered_redis_conf_runs_in_redis_server(tmp_path, persistent):
    ais = _ais(redis={"maxMemory": "64mb", "evictionPolicy": "allkeys-lfu", "persistence": {"enabled": persistent}})
    manifests = render_redis(ais, PASSWORD)
    conf = _secret_files(manifests, names(ais).redis_config)["redis.conf"]
    sts = next(m for m in manifests if m["kind"] == "StatefulSet")
    probe = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    # redis-server chdir()s to `dir` while parsing, before the harness's later override: move the path here.
    data_dir = tmp_path / "redis" / "data"
    data_dir.mkdir(parents=True)
    assert "\ndir /data\n" in conf
    conf = conf.replace("\ndir /data\n", f"\ndir {data_dir}\n")
    with harness.Redis(tmp_path / "redis", conf, password=PASSWORD) as redis, redis.client() as client:
        assert client.config_get("maxmemory") == {"maxmemory": str(parse_maxmemory("64mb"))}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
        assert client.config_get("appendonly") == {"appendonly": "yes" if persistent else "no"}
        assert client.config_get("save")["save"] == ("3600 1 300 100 60 10000" if persistent else "")
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}

        with redis.client(password=None) as anonymous, pytest.raises(AuthenticationError, match="required"):
            anonymous.get("k")
        with redis.client(password="not-it") as wrong, pytest.raises(AuthenticationError, match="invalid"):
            wrong.ping()
        assert client.set("k", "v") is True

        # The rendered readiness probe, with the password from the environment as the pod gives it.
        argv = [part.replace("-p 6379", f"-p {redis.port}") for part in probe]
        ready = subprocess.run(argv, env={**os.environ, "REDISCLI_AUTH": PASSWORD}, capture_output=True, timeout=10)
        assert ready.returncode == 0, ready
        unready = subprocess.run(argv, env={**os.environ, "REDISCLI_AUTH": "wrong"}, capture_output=True, timeout=10)
        assert unready.returncode != 0
        assert client.get("k") == "v"
        if persistent:
            redis.restart()
            with redis.client() as again:
                assert again.get("k") == "v", "the append-only file should bring the key back"


# ------------------------------------------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def kafka(tmp_path_factory):
    with harness.Kafka(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


def _kafka_spec(bootstrap: str, orders_partitions: int = 3, **orders: Any) -> KafkaSpec:
    return KafkaSpec.model_validate(
        {
            "bootstrapServers": bootstrap,
            "deletionPolicy": orders.pop("deletionPolicy", "Retain"),
            "topics": [
                {
                    "name": "orders", "partitions": orders_partitions, "replicationFactor": 1,
                    "retentionMs": orders.pop("retentionMs", 3_600_000),
                    "configs": {"cleanup.policy": "delete", "max.message.bytes": "2097152"},
                    "deadLetter": {"retentionMs": 172_800_000},
                },
                {"name": "clicks", "partitions": 2, "replicationFactor": 1, "deadLetter": {"enabled": False}},
            ],
        }
    )


def test_topics_created_grown_refused_survive_outage_and_deleted(kafka):
    admin = KafkaAdmin(kafka.bootstrap, timeout=3.0)
    names = ["orders", "orders.dlq", "clicks"]

    # Create: topics and the dead-letter topic, with the partitions and configs asked.
    result = sync_topics(_kafka_spec(kafka.bootstrap), admin)
    print("\ncreate:", result.state, result.events)
    assert result.state == "Ready", result.message
    owned = owned_topics(None, result)  # what the reconciler records in status.createdTopics
    assert owned == sorted(names)
    assert "created topic orders (3 partitions, replication 1) and orders.dlq" in result.events
    assert "created topic clicks (2 partitions, replication 1)" in result.events
    state = admin.describe(names)
    assert (state["orders"].partitions, state["orders.dlq"].partitions, state["clicks"].partitions) == (3, 3, 2)
    assert state["orders"].configs["retention.ms"] == "3600000"
    assert state["orders"].configs["max.message.bytes"] == "2097152"
    assert state["orders.dlq"].configs["retention.ms"] == "172800000"
    assert state["orders.dlq"].configs["max.message.bytes"] == "2097152"
    # The broker's own CLI agrees (an independent reader).
    assert kafka.describe_topic("orders")["PartitionCount"] == "3"

    # Nothing to do: nothing done.
    again = sync_topics(_kafka_spec(kafka.bootstrap), admin)
    assert (again.state, again.events, again.warnings) == ("Ready", [], [])

    # Grow partitions and change retention.
    grown = sync_topics(_kafka_spec(kafka.bootstrap, 6, retentionMs=7_200_000), admin)
    print("grow:", grown.state, grown.events)
    assert grown.state == "Ready", grown.message
    assert "topic orders: 3 -> 6 partitions" in grown.events
    assert "topic orders: retention.ms 3600000 -> 7200000" in grown.events
    state = admin.describe(names)
    assert (state["orders"].partitions, state["orders.dlq"].partitions) == (6, 6)
    assert state["orders"].configs["retention.ms"] == "7200000"

    # Shrink: refused, named, nothing changed (not even the retention asked in the same spec).
    refused = sync_topics(_kafka_spec(kafka.bootstrap, 4, retentionMs=60_000), admin)
    print("shrink:", refused.state, refused.reason, refused.warnings)
    assert (refused.state, refused.reason) == ("Degraded", "ChangeRefused")
    assert any(
        w.startswith("spec.kafka.topics[orders].partitions: 4 is below the 6 partitions the topic has;"
                     " Kafka cannot remove partitions")
        for w in refused.warnings
    ), refused.warnings
    state = admin.describe(names)
    assert state["orders"].partitions == 6
    assert state["orders"].configs["retention.ms"] == "7200000"

    # Broker gone: Degraded with a reason, within a bounded time; back when the broker is.
    kafka.stop()
    try:
        started = time.monotonic()
        down = sync_topics(_kafka_spec(kafka.bootstrap, 6, retentionMs=7_200_000), admin)
        elapsed = time.monotonic() - started
        print(f"outage: {down.state} {down.reason} in {elapsed:.1f}s: {down.message}")
        assert down.state == "Degraded"
        assert down.reason in (BROKER_UNAVAILABLE, TIMEOUT)
        assert kafka.bootstrap in down.message or "topic" in down.message
        assert elapsed < 5 * admin.timeout  # a hang guard (a few client timeouts), not a speed target
    finally:
        kafka.start()
    deadline = time.monotonic() + 60
    while True:
        back = sync_topics(_kafka_spec(kafka.bootstrap, 6, retentionMs=7_200_000), admin)
        if back.state == "Ready" or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"recovered: {back.state} after restart: {back.message}")
    assert back.state == "Ready", back.message

    # Retain keeps every topic; Delete removes the topics and dead-letter topics aifleet created.
    kept = delete_topics(_kafka_spec(kafka.bootstrap, 6), admin)
    assert kept.state == "Ready" and kept.reason == "Retained"
    assert set(admin.describe(names)) == set(names)
    deleted = delete_topics(_kafka_spec(kafka.bootstrap, 6, deletionPolicy="Delete"), admin, owned)
    print("delete:", deleted.state, deleted.events)
    assert deleted.state == "Ready", deleted.message
    deadline = time.monotonic() + 30
    while admin.describe(names) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert admin.describe(names) == {}
    # Deleting again is not an error: the topics are already gone.
    assert delete_topics(_kafka_spec(kafka.bootstrap, 6, deletionPolicy="Delete"), admin, owned).state == "Ready"


def test_unreachable_cluster_is_degraded_quickly():
    """No broker at all (a closed loopback port): a bounded, typed failure, not a hang."""
    port = harness.free_port()
    admin = KafkaAdmin(f"127.0.0.1:{port}", timeout=2.0)
    started = time.monotonic()
    result = sync_topics(_kafka_spec(f"127.0.0.1:{port}"), admin)
    elapsed = time.monotonic() - started
    assert result.state == "Degraded" and result.reason in (BROKER_UNAVAILABLE, TIMEOUT), result
    assert elapsed < 5 * admin.timeout, elapsed  # a hang guard, not a speed target
