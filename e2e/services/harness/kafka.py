"""Kafka in KRaft mode (one broker that is its own controller) and its CLI tools, from the jars install.sh fetched."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional

from .net import HOST, ServiceError, free_port, port_open
from .process import HERE, INSTALL_HINT, PathLike, Service, cache_dir, require_binary


def kafka_pom_version() -> str:
    text = (HERE / "kafka" / "pom.xml").read_text()
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if not m:
        raise ServiceError("kafka.version not found in e2e/services/kafka/pom.xml")
    return m.group(1)


def kafka_libs() -> Path:
    libs = Path(os.environ.get("AIFLEET_KAFKA_LIBS") or cache_dir() / "kafka" / kafka_pom_version() / "libs")
    if not (libs / ".complete").exists():
        raise ServiceError(f"Kafka jars missing in {libs}; {INSTALL_HINT}")
    return libs


_KAFKA_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = {target}
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
"""


class Kafka(Service):
    """A single-node KRaft Kafka (broker + controller) on loopback, no ZooKeeper.

    ``bootstrap`` is ``127.0.0.1:<port>``. Storage is formatted once (cluster id kept in
    the state dir), so stop()/start() comes back with the same topics and data.
    ``auto.create.topics.enable=false``, as in production: topics must be created.
    """

    name = "kafka"
    start_timeout = 90.0
    stop_timeout = 60.0

    def __init__(self, state_dir: PathLike, *, port: Optional[int] = None, controller_port: Optional[int] = None,
                 heap: str = "512m", properties: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.heap = heap
        self.extra_properties = dict(properties or {})
        self.libs = kafka_libs()
        self.java = require_binary("java", [os.path.join(os.environ.get("JAVA_HOME", "/nonexistent"), "bin", "java")])
        self.data_dir = self.state_dir / "data"
        self.props_path = self.state_dir / "server.properties"
        self.log4j_server = self.state_dir / "log4j2-server.properties"
        self.log4j_tools = self.state_dir / "log4j2-tools.properties"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def properties(self) -> dict[str, Any]:
        return {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            # Single node: internal topics cannot have more than one replica.
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            **self.extra_properties,
        }

    def _java(self, main: str, *args: str) -> list[str]:
        """argv for a short-lived Kafka tool: small heap, JIT tuned for startup time."""
        return [self.java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j_tools}",
                "-cp", f"{self.libs}/*", main, *args]

    def _prepare(self) -> None:
        self.props_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        self.log4j_server.write_text(_KAFKA_LOG4J.format(target="SYSTEM_OUT", level="INFO"))
        # Tools print their results on stdout: keep their logging to warnings on stderr.
        self.log4j_tools.write_text(_KAFKA_LOG4J.format(target="SYSTEM_ERR", level="WARN"))
        if not (self.data_dir / "meta.properties").exists():
            self._format()

    def _format(self) -> None:
        id_file = self.state_dir / "cluster.id"
        if not id_file.exists():
            # Kafka cluster ids are 16 random bytes, base64url without padding.
            id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        res = subprocess.run(
            # `--cluster-id=ID`, not `-t ID`: a base64url id may start with "-" and read as an option.
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={id_file.read_text().strip()}",
                       f"--config={self.props_path}", "--ignore-formatted"),
            capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{res.stdout}\n{res.stderr}")

    def _argv(self) -> list[str]:
        # C1-only JIT (TieredStopAtLevel=1) roughly halves broker start time on 2 cores;
        # the lower peak throughput does not matter for tests.
        return [self.java, f"-Xmx{self.heap}", f"-Xms{min_heap(self.heap)}", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.log4j_server}", f"-Dkafka.logs.dir={self.state_dir}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.props_path)]

    def _ready(self) -> bool:
        assert self.process is not None
        return "Kafka Server started" in self.process.log_since_start() and port_open(self.port)

    # -- CLI tools from the same jars (no Python client needed) --------------------

    def tool(self, main: str, *args: str, timeout: float = 120.0, check: bool = True) -> str:
        """Run a Kafka CLI class (e.g. org.apache.kafka.tools.TopicCommand); return stdout."""
        res = subprocess.run(self._java(main, *args), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise ServiceError(f"{main} {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res.stdout

    def topics(self, *args: str, timeout: float = 120.0) -> str:
        """kafka-topics.sh equivalent against this broker."""
        return self.tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", self.bootstrap, *args,
                         timeout=timeout)

    def create_topic(self, name: str, partitions: int = 1, config: Optional[Mapping[str, Any]] = None) -> None:
        args = ["--create", "--topic", name, "--partitions", str(partitions), "--replication-factor", "1"]
        for k, v in (config or {}).items():
            args += ["--config", f"{k}={v}"]
        self.topics(*args)

    def list_topics(self) -> list[str]:
        return sorted(t for t in self.topics("--list").split() if t)

    def describe_topics(self, *names: str) -> dict[str, dict[str, str]]:
        """``--describe`` summary lines (PartitionCount, Configs, ...) by topic name.

        All topics in one JVM run when no names are given (each tool run costs ~2 s).
        """
        args = ["--describe"] + [a for n in names for a in ("--topic", n)]
        out: dict[str, dict[str, str]] = {}
        for line in self.topics(*args).splitlines():
            if line.startswith("Topic:") and "PartitionCount" in line:
                fields = dict(re.findall(r"(\w+):\s*(\S*)", line))
                out[fields["Topic"]] = fields
        return out

    def describe_topic(self, name: str) -> dict[str, str]:
        """The topic summary line of ``--describe`` as a dict (PartitionCount, Configs, ...)."""
        found = self.describe_topics(name)
        if name not in found:
            raise ServiceError(f"topic {name!r} not described")
        return found[name]


def min_heap(heap: str) -> str:
    """Initial heap: half of -Xmx for the usual '<n>m' form, else the same."""
    m = re.fullmatch(r"(\d+)m", heap)
    return f"{int(m.group(1)) // 2}m" if m else heap


# ------------------------------------------------------------------------ Prometheus
