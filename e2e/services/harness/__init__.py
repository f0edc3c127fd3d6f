"""Start and stop REAL test servers for aifleet's e2e tests, on loopback only.

One small class per service, each usable as a context manager::

    with Postgres(tmp_path / "pg", database="app", user="app", password="pw") as pg:
        pg.psql("SELECT 1", user="app", password="pw")

Every instance owns a state dir (given by the caller, typically under pytest's
``tmp_path``) holding its config, data and ``<name>.log``. Ports default to free
loopback ports picked at construction, so ``stop()`` + ``start()`` comes back on the
same ports and the same data. ``stop()`` leaves no process behind: each server runs in
its own process group, which is SIGKILLed if a graceful stop runs out of time, and an
``atexit`` hook stops anything a crashed test left running.

Modules: ``net`` (ports, waits, HTTP; shared with the unit tests), ``process`` (the
process group and the ``Service`` base), then one module per service. Standard library
only, except redis-py for talking to Redis. The binaries come from
``e2e/services/install.sh``: Debian's postgresql/pgbouncer/redis-server/prometheus, Kafka
jars and the PyTriton venv in the cache dir (``$AIFLEET_CACHE`` or
``${XDG_CACHE_HOME:-~/.cache}/aifleet``).
"""

from __future__ import annotations

from .kafka import Kafka, kafka_libs, kafka_pom_version, min_heap
from .net import HOST, ServiceError, free_port, http_get, http_get_text, http_post, port_open, wait_until
from .pgbouncer import PgBouncer, fill_placeholders, ini_override, retarget_databases
from .postgres import Postgres, postgres_bindir, run_psql
from .process import (
    HERE,
    INSTALL_HINT,
    ManagedProcess,
    PathLike,
    Service,
    _live,
    _live_lock,
    cache_dir,
    hand_over,
    require_binary,
    service_user,
    short_socket_dir,
    wait_group_gone,
)
from .prometheus import Labels, Prometheus, Target
from .redis import Redis
from .triton import LoadGenerator, TritonServer, pytriton_python

__all__ = [
    "HERE", "HOST", "INSTALL_HINT", "Kafka", "Labels", "LoadGenerator", "ManagedProcess", "PathLike", "PgBouncer",
    "Postgres", "Prometheus", "Redis", "Service", "ServiceError", "Target", "TritonServer", "_live", "_live_lock",
    "cache_dir", "fill_placeholders", "free_port", "hand_over", "http_get", "http_get_text", "http_post",
    "ini_override", "kafka_libs", "kafka_pom_version", "min_heap", "port_open", "postgres_bindir", "pytriton_python",
    "require_binary", "retarget_databases", "run_psql", "service_user", "short_socket_dir", "wait_group_gone",
    "wait_until",
]
