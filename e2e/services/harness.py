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

Standard library only. The binaries come from ``e2e/services/install.sh``:
Debian's postgresql/pgbouncer/redis-server/prometheus, Kafka jars and the PyTriton venv
in the cache dir (``$AIFLEET_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/aifleet``).
"""

from __future__ import annotations

import atexit
import base64
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
INSTALL_HINT = "run e2e/services/install.sh first"

PathLike = Union[str, Path]
Labels = Mapping[str, str]


# --------------------------------------------------------------------------- helpers

class ServiceError(RuntimeError):
    """A service failed to install-check, start, become ready or stop."""


def cache_dir() -> Path:
    """Root of the aifleet cache that install.sh fills (same rule as the script)."""
    if os.environ.get("AIFLEET_CACHE"):
        return Path(os.environ["AIFLEET_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "aifleet"


_ports_lock = threading.Lock()
_ports_given: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same one twice per process.

    The OS may still hand the port to someone else before the server binds it; the
    per-process memory at least keeps two services of one test from colliding.
    """
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise ServiceError("could not find a free loopback port")


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               proc: Optional["ManagedProcess"] = None, interval: float = 0.2) -> None:
    """Poll ``check`` until true; fail after ``timeout`` s or as soon as ``proc`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a not-yet-ready server may fail the probe any way
            pass
        if proc is not None and not proc.running:
            raise ServiceError(f"{what}: process exited with {proc.returncode}\n{proc.log_tail()}")
        if time.monotonic() >= deadline:
            tail = proc.log_tail() if proc else ""
            raise ServiceError(f"{what}: not ready after {timeout:.0f}s\n{tail}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET returning (status, body) for any HTTP status; raises only on network errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post(url: str, data: bytes = b"", timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def require_binary(name: str, candidates: Sequence[str] = ()) -> str:
    for c in (*candidates, name):
        found = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if found:
            return found
    raise ServiceError(f"{name} not found; {INSTALL_HINT}")


def service_user() -> Optional[pwd.struct_passwd]:
    """Unprivileged account for servers that refuse to run as root (postgres, pgbouncer).

    None when we are not root: then the servers simply run as us.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceError("running as root but no 'postgres' or 'nobody' user exists")


def hand_over(path: Path, user: Optional[pwd.struct_passwd]) -> None:
    """Make ``path`` (recursively) owned by ``user`` and reachable by it.

    pytest's tmp dirs live under a 0700 root-owned /tmp/pytest-of-root, which the
    postgres user cannot traverse. We add only the search bit (o+x) to such ancestors:
    that lets the service reach its own state dir by name without being able to list
    or read anything else.
    """
    if user is None:
        return
    for root, dirs, files in os.walk(path):
        for name in (root, *(os.path.join(root, f) for f in files + dirs)):
            os.lchown(name, user.pw_uid, user.pw_gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)


def short_socket_dir(preferred: Path) -> Path:
    """A dir for unix sockets: ``preferred`` unless its path is too long.

    sun_path holds 107 bytes; "<dir>/.s.PGSQL.NNNNN" must fit, and pytest tmp paths
    can be long.
    """
    if len(str(preferred)) + len("/.s.PGSQL.65535") < 100:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="aifleet-sock-"))


# ------------------------------------------------------------------ process handling

_live: set["ManagedProcess"] = set()
_live_lock = threading.Lock()


class ManagedProcess:
    """A server process in its own process group, logging to a file."""

    def __init__(self, argv: Sequence[str], log_path: Path, *, env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[PathLike] = None, user: Optional[pwd.struct_passwd] = None) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log_offset = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append, so a restart keeps the earlier run's log; readiness checks that look
        # for log lines only read from log_offset on.
        with open(self.log_path, "ab") as log:
            self.log_offset = log.tell()
            log.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            kwargs: dict[str, Any] = {}
            if self.user is not None:
                kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
                env = dict(self.env if self.env is not None else os.environ)
                env.update(HOME=self.user.pw_dir, USER=self.user.pw_name, LOGNAME=self.user.pw_name)
                self.env = env
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True, **kwargs)
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll() if self.proc else None

    def log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_since_start().splitlines()[-lines:]
        return f"--- last lines of {self.log_path}:\n" + "\n".join(text)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the main process, wait, then SIGKILL its whole process group."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session=True: the group id is the leader's pid
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children (postgres backends, tritonserver, python backend stubs) share the
        # group; anything still there after a graceful stop is killed.
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"pid {pgid} survived SIGKILL") from exc
        wait_group_gone(pgid, timeout=10)
        with _live_lock:
            _live.discard(self)


def wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left (killed children exit async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.05)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for p in leftovers:
        try:
            p.stop(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


class Service:
    """Base: state dir, log file, start/stop and the context-manager protocol."""

    name = "service"
    start_timeout = 60.0
    stop_signal = signal.SIGTERM
    stop_timeout = 30.0

    def __init__(self, state_dir: PathLike) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / f"{self.name}.log"
        self.process: Optional[ManagedProcess] = None

    # subclasses implement these three
    def _prepare(self) -> None:
        """Write config / init data; called before every start (must be idempotent)."""

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self) -> None:
        """One-off setup once the server answers (e.g. create a database)."""

    def _env(self) -> Optional[dict[str, str]]:
        return None

    def _user(self) -> Optional[pwd.struct_passwd]:
        return None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    def start(self) -> "Service":
        if self.running:
            return self
        self._prepare()
        self.process = ManagedProcess(self._argv(), self.log_path, env=self._env(),
                                      cwd=self.state_dir, user=self._user())
        self.process.start()
        try:
            wait_until(self._ready, self.start_timeout, f"{self.name} in {self.state_dir}", self.process)
            self._after_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(self.stop_signal, self.stop_timeout)
            self.process = None

    def restart(self) -> "Service":
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state_dir} running={self.running}>"


# ------------------------------------------------------------------------ PostgreSQL

def postgres_bindir() -> Path:
    """Newest /usr/lib/postgresql/<N>/bin holding a postgres binary (Debian layout)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("postgres")
    if which:
        return Path(which).parent
    raise ServiceError(f"postgres not found; {INSTALL_HINT}")


class Postgres(Service):
    """A throwaway PostgreSQL cluster: initdb + postgres on 127.0.0.1:<port>.

    On first start it creates role ``user`` (LOGIN, password stored as scram-sha-256 or
    md5 per ``password_encryption``) and database ``database`` owned by it. TCP logins
    need that password; the superuser ``postgres`` is trusted on the unix socket only
    (``socket_dir``), which is how ``psql()`` without ``password`` connects.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back clients and exit
    SUPERUSER = "postgres"

    def __init__(self, state_dir: PathLike, *, port: Optional[int] = None, database: str = "aifleet",
                 user: str = "aifleet", password: str = "aifleet", password_encryption: str = "scram-sha-256",
                 settings: Optional[Mapping[str, Union[str, int]]] = None,
                 extra_listen: Sequence[str] = (), client_networks: Sequence[str] = ()) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.port = port or free_port()
        # Also listen on these addresses and take password logins from these networks: the real node's
        # bridge address and pod range, so PgBouncer pods reach this server.
        self.extra_listen = list(extra_listen)
        self.client_networks = list(client_networks)
        self.database = database
        self.user = user
        self.password = password
        self.password_encryption = password_encryption
        self.settings = dict(settings or {})
        self.bindir = postgres_bindir()
        self.data_dir = self.state_dir / "data"
        self.socket_dir = short_socket_dir(self.state_dir / "sock")
        self._run_as = service_user()

    @property
    def dsn(self) -> str:
        """libpq URL for the application user over TCP."""
        return (f"postgresql://{urllib.parse.quote(self.user)}:{urllib.parse.quote(self.password)}"
                f"@{self.host}:{self.port}/{urllib.parse.quote(self.database)}")

    @property
    def url(self) -> str:
        return self.dsn

    def _user(self) -> Optional[pwd.struct_passwd]:
        return self._run_as

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        hand_over(self.state_dir, self._run_as)
        hand_over(self.socket_dir, self._run_as)
        kwargs: dict[str, Any] = {}
        if self._run_as is not None:
            kwargs = dict(user=self._run_as.pw_uid, group=self._run_as.pw_gid, extra_groups=[])
        # trust on the unix socket (only our harness reaches it), passwords over TCP.
        res = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.SUPERUSER,
             "--auth-local=trust", f"--auth-host={self.password_encryption}",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, cwd=self.state_dir, **kwargs)
        if res.returncode != 0:
            raise ServiceError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        conf = {
            "listen_addresses": "'" + ",".join([HOST, *self.extra_listen]) + "'",
            "port": self.port,
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": f"'{self.password_encryption}'",
            # Durability is pointless for a throwaway test cluster; speed is not.
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "'32MB'",
            **self.settings,
        }
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("\n# aifleet e2e harness\n")
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        with open(self.data_dir / "pg_hba.conf", "a") as f:
            f.writelines(f"host all all {network} {self.password_encryption}\n" for network in self.client_networks)

    def _prepare(self) -> None:
        self._first_start = not (self.data_dir / "PG_VERSION").exists()
        if self._first_start:
            self._initdb()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        hand_over(self.socket_dir, self._run_as)

    def _argv(self) -> list[str]:
        return [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-k", str(self.socket_dir),
                "-p", str(self.port), "-h", ",".join([HOST, *self.extra_listen])]

    def _ready(self) -> bool:
        res = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)],
                             capture_output=True, timeout=10)
        return res.returncode == 0

    def _after_ready(self) -> None:
        if not self._first_start:
            return
        pw = self.password.replace("'", "''")
        self.psql(f"CREATE ROLE \"{self.user}\" LOGIN PASSWORD '{pw}'", database="postgres")
        self.psql(f"CREATE DATABASE \"{self.database}\" OWNER \"{self.user}\"", database="postgres")

    def psql(self, sql: str, *, database: Optional[str] = None, user: Optional[str] = None,
             password: Optional[str] = None, port: Optional[int] = None, host: Optional[str] = None,
             timeout: float = 60.0, check: bool = True) -> str:
        """Run SQL with psql and return unaligned, tuples-only output.

        Without ``password``: superuser over the unix socket. With it: ``user`` over TCP
        to ``host:port`` (defaults: this server; pass a PgBouncer's port to go through it).
        """
        return run_psql(sql, host=host or (HOST if password is not None else str(self.socket_dir)),
                        port=port or self.port, user=user or (self.user if password is not None else self.SUPERUSER),
                        password=password, database=database or self.database, timeout=timeout, check=check)

    def stop(self) -> None:
        super().stop()
        if not self.socket_dir.is_relative_to(self.state_dir):
            # the short fallback dir from short_socket_dir(); start() re-creates it
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def run_psql(sql: str, *, host: str, port: int, user: str, database: str, password: Optional[str] = None,
             timeout: float = 60.0, check: bool = True) -> str:
    """psql -X -A -t -c SQL; raises ServiceError (with stderr) on failure when ``check``."""
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    env.pop("PGPASSWORD", None)
    if password is not None:
        env["PGPASSWORD"] = password
    argv = [require_binary("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port),
            "-U", user, "-d", database, "-c", sql]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise ServiceError(f"psql failed ({res.returncode}) as {user}@{host}:{port}/{database}: {res.stderr.strip()}")
    return res.stdout.strip()


# ------------------------------------------------------------------------- PgBouncer

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_placeholders(text: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` for known names only; other braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def ini_override(text: str, section: str, overrides: Mapping[str, Any]) -> str:
    """Set keys in an ini ``[section]``: drop existing lines for them, add ours at the top.

    Line based, to keep the caller's file (comments, ordering) as rendered otherwise.
    A value of None removes the key.
    """
    keys = {k.lower() for k in overrides}
    out: list[str] = []
    current = None
    seen = False
    for line in text.splitlines():
        stripped = line.strip()
        m = re.match(r"\[([^\]]+)\]", stripped)
        if m:
            current = m.group(1).strip().lower()
            out.append(line)
            if current == section.lower() and not seen:
                seen = True
                out.extend(f"{k} = {v}" for k, v in overrides.items() if v is not None)
            continue
        if current == section.lower() and "=" in stripped and not stripped.startswith((";", "#")):
            if stripped.split("=", 1)[0].strip().lower() in keys:
                continue
        out.append(line)
    if not seen:
        out += ["", f"[{section}]", *(f"{k} = {v}" for k, v in overrides.items() if v is not None)]
    return "\n".join(out) + "\n"


def retarget_databases(ini_text: str, host: str, port: int) -> str:
    """Point every ``[databases]`` entry's host=/port= at (host, port).

    The operator renders a pgbouncer.ini aimed at the in-cluster Postgres Service; a
    test aims the same text at its local Postgres with this.
    """
    out: list[str] = []
    current = None
    for line in ini_text.splitlines():
        m = re.match(r"\s*\[([^\]]+)\]", line)
        if m:
            current = m.group(1).strip().lower()
        elif current == "databases" and "=" in line and not line.lstrip().startswith((";", "#")):
            name, conn = line.split("=", 1)
            conn = re.sub(r"\bhost=\S+", f"host={host}", conn)
            conn = re.sub(r"\bport=\S+", f"port={port}", conn)
            if "host=" not in conn:
                conn += f" host={host}"
            if "port=" not in conn:
                conn += f" port={port}"
            line = f"{name.rstrip()} = {conn.strip()}"
        out.append(line)
    return "\n".join(out) + "\n"


class PgBouncer(Service):
    """pgbouncer with the caller's pgbouncer.ini and userlist.txt text.

    The ini may use placeholders ``{listen_port}``, ``{listen_addr}``, ``{state_dir}``,
    ``{auth_file}`` and any in ``placeholders`` (e.g. ``{pg_port}``). The harness then
    forces, in ``[pgbouncer]``: listen_addr=127.0.0.1, listen_port, auth_file (the
    userlist it wrote), pidfile in the state dir, no log file (stderr goes to the log),
    no unix socket, no ``user=`` switch — plus ``overrides``. pgbouncer refuses to run
    as root, so as root it runs as the ``postgres`` user with its state dir handed over.
    """

    name = "pgbouncer"
    # 1.18: SIGTERM = immediate shutdown; SIGINT would PAUSE first and wait for clients.
    stop_signal = signal.SIGTERM

    def __init__(self, state_dir: PathLike, ini_text: str, userlist_text: str, *, port: Optional[int] = None,
                 placeholders: Optional[Mapping[str, Any]] = None,
                 overrides: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.port = port or free_port()
        self.ini_path = self.state_dir / "pgbouncer.ini"
        self.userlist_path = self.state_dir / "userlist.txt"
        self.ini_template = ini_text
        self.userlist_text = userlist_text
        self.placeholders = dict(placeholders or {})
        self.overrides = dict(overrides or {})
        self.binary = require_binary("pgbouncer", ["/usr/sbin/pgbouncer"])
        self._run_as = service_user()

    def render(self) -> str:
        values = {"listen_port": self.port, "listen_addr": HOST, "state_dir": self.state_dir,
                  "auth_file": self.userlist_path, **self.placeholders}
        text = fill_placeholders(self.ini_template, values)
        forced = {
            "listen_addr": HOST, "listen_port": self.port, "auth_file": self.userlist_path,
            "pidfile": self.state_dir / "pgbouncer.pid", "logfile": None, "unix_socket_dir": "",
            "user": None, **self.overrides,
        }
        return ini_override(text, "pgbouncer", forced)

    def _user(self) -> Optional[pwd.struct_passwd]:
        return self._run_as

    def _prepare(self) -> None:
        self.ini_path.write_text(self.render())
        self.userlist_path.write_text(self.userlist_text)
        (self.state_dir / "pgbouncer.pid").unlink(missing_ok=True)
        self.ini_path.chmod(0o600)
        self.userlist_path.chmod(0o600)
        hand_over(self.state_dir, self._run_as)

    def _argv(self) -> list[str]:
        return [self.binary, str(self.ini_path)]

    def _ready(self) -> bool:
        return port_open(self.port)

    def psql(self, sql: str, *, database: str, user: str, password: str, timeout: float = 60.0,
             check: bool = True) -> str:
        """Run SQL through the pooler (also ``database='pgbouncer'`` for SHOW commands)."""
        return run_psql(sql, host=HOST, port=self.port, user=user, password=password, database=database,
                        timeout=timeout, check=check)

    def show(self, what: str, *, user: str, password: str) -> list[dict[str, str]]:
        """``SHOW <what>`` on the admin console as rows of dicts (user must be an admin/stats user)."""
        env = {**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
        res = subprocess.run(
            [require_binary("psql"), "-X", "-A", "-F", "\t", "-P", "footer=off", "-h", HOST, "-p", str(self.port),
             "-U", user, "-d", "pgbouncer", "-c", f"SHOW {what}"],
            capture_output=True, text=True, env=env, timeout=30)
        if res.returncode != 0:
            raise ServiceError(f"SHOW {what} failed: {res.stderr.strip()}")
        lines = [ln for ln in res.stdout.splitlines() if ln]
        if not lines:
            return []
        header = lines[0].split("\t")
        return [dict(zip(header, ln.split("\t"), strict=True)) for ln in lines[1:]]


# ----------------------------------------------------------------------------- Redis

class Redis(Service):
    """redis-server with the caller's redis.conf text; the harness owns port, bind
    (127.0.0.1), dir (``<state>/data``), daemonize, logging, pidfile and unix socket.

    ``password`` is only used for ``url`` and ``command()`` defaults; the server's auth
    comes from ``requirepass`` in the conf text.
    """

    name = "redis"

    def __init__(self, state_dir: PathLike, conf_text: str = "", *, port: Optional[int] = None,
                 password: Optional[str] = None) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.port = port or free_port()
        self.conf_text = conf_text
        self.password = password
        self.conf_path = self.state_dir / "redis.conf"
        self.data_dir = self.state_dir / "data"
        self.binary = require_binary("redis-server")

    @property
    def url(self) -> str:
        auth = f":{urllib.parse.quote(self.password)}@" if self.password else ""
        return f"redis://{auth}{HOST}:{self.port}/0"

    # Directives the harness owns. The caller's lines for them are dropped, not just
    # overridden later in the file: redis-server acts on some while parsing (e.g. it
    # chdir()s to `dir` at once, so an in-cluster `dir /data` would fail here).
    FORCED = ("port", "bind", "dir", "daemonize", "logfile", "supervised", "pidfile", "unixsocket",
              "unixsocketperm")

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        kept = [line for line in self.conf_text.splitlines()
                if (line.split() or [""])[0].lower() not in self.FORCED]
        forced = [
            "", "# --- aifleet e2e harness overrides",
            f"port {self.port}", f"bind {HOST}", f"dir {self.data_dir}",
            "daemonize no", 'logfile ""', "supervised no", f"pidfile {self.state_dir / 'redis.pid'}",
        ]
        self.conf_path.write_text("\n".join(kept + forced) + "\n")

    def _argv(self) -> list[str]:
        return [self.binary, str(self.conf_path)]

    def _ready(self) -> bool:
        reply = self.command("PING", password=None)
        # NOAUTH also proves the server is up and serving.
        return reply == "PONG" or (isinstance(reply, RespError) and "NOAUTH" in str(reply))

    def command(self, *args: Union[str, bytes, int], password: Optional[str] = "", timeout: float = 5.0) -> Any:
        """Send one command over a fresh connection (after AUTH if a password applies).

        ``password=""`` means "use self.password"; None means "don't authenticate".
        Returns str/int/list/None, or a RespError for error replies (not raised, so
        tests can assert on refusals).
        """
        pw = self.password if password == "" else password
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            f = s.makefile("rwb")
            if pw:
                f.write(resp_encode("AUTH", pw))
                f.flush()
                auth = resp_read(f)
                if isinstance(auth, RespError):
                    return auth
            f.write(resp_encode(*args))
            f.flush()
            return resp_read(f)


class RespError(str):
    """An error reply from Redis (e.g. ``NOAUTH Authentication required.``)."""


def resp_encode(*args: Union[str, bytes, int]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def resp_read(f: Any) -> Any:
    line = f.readline()
    if not line:
        raise ServiceError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        return RespError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise ServiceError(f"unexpected RESP reply {line!r}")


# ----------------------------------------------------------------------------- Kafka

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

Target = tuple[str, Labels]


class Prometheus(Service):
    """Prometheus scraping file_sd targets that tests set at run time.

    Config: one scrape job reading ``<state>/targets/*.json`` (re-read every
    ``sd_refresh``). ``set_targets(job, [("127.0.0.1:8002", {"pod": "a"}), ...])``
    writes ``targets/<job>.json`` with ``job=<job>`` plus the given labels on every
    target; an empty list removes them. The TSDB lives in ``<state>/data`` and survives
    stop()/start(), so a test can simulate an outage. ``url`` is the HTTP API root.
    """

    name = "prometheus"

    def __init__(self, state_dir: PathLike, *, port: Optional[int] = None, scrape_interval: str = "2s",
                 evaluation_interval: Optional[str] = None, sd_refresh: str = "2s",
                 rule_files: Sequence[PathLike] = (), extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
                 retention: str = "1d", host: str = HOST, binary: Optional[str] = None) -> None:
        super().__init__(state_dir)
        # Loopback, or the real node's bridge address so that pods (the operator's) can query it.
        self.host = host
        self.port = port or free_port()
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.sd_refresh = sd_refresh
        self.rule_files = [str(p) for p in rule_files]
        self.extra_scrape_configs = list(extra_scrape_configs)
        self.retention = retention
        self.config_path = self.state_dir / "prometheus.yml"
        self.targets_dir = self.state_dir / "targets"
        self.data_dir = self.state_dir / "data"
        self.binary = binary or require_binary("prometheus")
        self.targets_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.evaluation_interval},
            "rule_files": self.rule_files,
            "scrape_configs": [{
                "job_name": "file_sd",
                "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")],
                                     "refresh_interval": self.sd_refresh}],
            }, *self.extra_scrape_configs],
        }

    def _prepare(self) -> None:
        # YAML is a superset of JSON, so the stdlib is enough to write the config.
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")

    def _argv(self) -> list[str]:
        return [self.binary, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={self.retention}", f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-lifecycle", "--log.level=info"]

    def _ready(self) -> bool:
        return http_get(f"{self.url}/-/ready", timeout=2)[0] == 200

    def set_targets(self, job: str, targets: Iterable[Union[Target, str]]) -> None:
        """Replace job ``job``'s targets; each is "host:port" or ("host:port", labels)."""
        groups = []
        for t in targets:
            addr, labels = (t, {}) if isinstance(t, str) else t
            groups.append({"targets": [addr], "labels": {"job": job, **{k: str(v) for k, v in labels.items()}}})
        path = self.targets_dir / f"{job}.json"
        if not groups:
            path.unlink(missing_ok=True)
            return
        # Write-then-rename so Prometheus never reads a half-written file.
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(groups, indent=2))
        os.replace(tmp, path)

    def reload(self) -> None:
        """Re-read prometheus.yml (after changing rule files or scrape configs)."""
        self._prepare()
        status, body = http_post(f"{self.url}/-/reload")
        if status != 200:
            raise ServiceError(f"reload failed: {status} {body!r}")

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>?params; returns ``data`` or raises on an error status."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = http_get(url)
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise ServiceError(f"GET {url}: {status} {doc.get('error', body[:200])}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the vector's samples as [{'metric': {...}, 'value': [ts, 'v']}]."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def query_value(self, expr: str) -> Optional[float]:
        """The single value of a query returning at most one sample (None if empty)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise ServiceError(f"{expr!r} returned {len(result)} series; aggregate it")
        return float(result[0]["value"][1])

    def active_targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_for_targets(self, job: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``count`` targets of ``job`` have been scraped successfully."""
        found: list[dict[str, Any]] = []

        def up() -> bool:
            found[:] = [t for t in self.active_targets()
                        if t["labels"].get("job") == job and t["health"] == "up"]
            return len(found) >= count

        wait_until(up, timeout, f"prometheus targets of job {job!r} up", self.process, interval=0.5)
        return found


# ------------------------------------------------------------------- Triton + loadgen

def pytriton_python() -> str:
    """The PyTriton venv's interpreter (Debian python3 based; see install.sh)."""
    py = os.environ.get("AIFLEET_PYTRITON_PYTHON") or str(cache_dir() / "venvs" / "pytriton" / "bin" / "python")
    if not os.access(py, os.X_OK):
        raise ServiceError(f"PyTriton venv python {py} missing; {INSTALL_HINT}")
    return py


class TritonServer(Service):
    """A real Triton Inference Server (PyTriton) serving the CPU model ``model``.

    Runs e2e/services/triton/model_server.py in the PyTriton venv. Attributes:
    ``http_port``/``grpc_port``/``metrics_port``; ``http_address`` ("127.0.0.1:port",
    the form tritonclient wants), ``http_url``, ``metrics_address`` (a Prometheus
    target) and ``metrics_url``. Ready once ``/v2/models/<model>/ready`` answers 200.
    PyTriton copies tritonserver into its workspace (``<state>/workspace``) on each
    start and deletes it on a clean stop.
    """

    name = "triton"
    start_timeout = 120.0
    stop_timeout = 30.0

    def __init__(self, state_dir: PathLike, *, http_port: Optional[int] = None, grpc_port: Optional[int] = None,
                 metrics_port: Optional[int] = None, model: str = "echo", delay_ms: float = 0.0,
                 max_batch_size: int = 64, metrics_interval_ms: int = 1000) -> None:
        super().__init__(state_dir)
        self.host = HOST
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.model = model
        self.delay_ms = delay_ms
        self.max_batch_size = max_batch_size
        self.metrics_interval_ms = metrics_interval_ms
        self.python = pytriton_python()
        self.workspace = self.state_dir / "workspace"

    @property
    def port(self) -> int:
        return self.http_port

    @property
    def http_address(self) -> str:
        return f"{HOST}:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address}"

    url = http_url

    @property
    def metrics_address(self) -> str:
        return f"{HOST}:{self.metrics_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    def _prepare(self) -> None:
        # A workspace left by a killed run would make PyTriton fail; start clean.
        shutil.rmtree(self.workspace, ignore_errors=True)

    def _argv(self) -> list[str]:
        return [self.python, str(HERE / "triton" / "model_server.py"),
                "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                "--metrics-port", str(self.metrics_port), "--workspace", str(self.workspace),
                "--model-name", self.model, "--delay-ms", str(self.delay_ms),
                "--max-batch-size", str(self.max_batch_size), "--metrics-interval-ms", str(self.metrics_interval_ms)]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # Keep the pyenv interpreter's settings out of the Debian-python venv.
        for var in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(var, None)
        return env

    def _ready(self) -> bool:
        return http_get(f"{self.http_url}/v2/models/{self.model}/ready", timeout=2)[0] == 200

    def infer(self, values: Sequence[float]) -> list[float]:
        """One inference over Triton's HTTP/JSON protocol (no client library needed)."""
        body = json.dumps({"inputs": [{"name": "data", "shape": [1, len(values)], "datatype": "FP32",
                                       "data": list(values)}]}).encode()
        status, out = http_post(f"{self.http_url}/v2/models/{self.model}/infer", body)
        if status != 200:
            raise ServiceError(f"infer failed: {status} {out[:200]!r}")
        return json.loads(out)["outputs"][0]["data"]

    def metrics(self) -> str:
        return http_get(self.metrics_url)[1].decode()

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.workspace, ignore_errors=True)


class LoadGenerator:
    """Runs e2e/services/triton/loadgen.py (PyTriton venv) against Triton HTTP endpoints.

    ``profile`` is [(seconds, rps), ...]. ``start()`` runs it in the background,
    ``wait()`` returns the JSON report (per step: target_rps, achieved_rps, ok, errors,
    p50_ms, p99_ms); ``run()`` does both. The generator stops by itself after the
    profile, ``max_seconds`` (default: profile length + 30 s) or ``max_requests``.
    """

    def __init__(self, state_dir: PathLike, urls: Sequence[str], profile: Sequence[tuple[float, float]], *,
                 model: str = "echo", workers: int = 16, max_seconds: Optional[float] = None,
                 max_requests: int = 200_000, timeout: float = 5.0, python: Optional[str] = None,
                 input_name: str = "data", window_s: float = 0.0, allow_networks: Sequence[str] = (),
                 fresh_connections: bool = False, batch: int = 1, live_path: Optional[PathLike] = None) -> None:
        if not urls or not profile:
            raise ValueError("need at least one URL and one (seconds, rps) step")
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.urls = [u.split("://", 1)[-1] for u in urls]
        self.profile = [(float(s), float(r)) for s, r in profile]
        self.model = model
        self.workers = workers
        self.max_seconds = max_seconds or sum(s for s, _ in self.profile) + 30
        self.max_requests = max_requests
        self.timeout = timeout
        self.input_name = input_name
        self.window_s = window_s
        self.allow_networks = list(allow_networks)
        self.fresh_connections = fresh_connections
        self.batch = batch
        self.live_path = Path(live_path) if live_path else None
        # Any interpreter with tritonclient[http] + numpy works (the repo's .venv has them);
        # the PyTriton venv is the default because install.sh always builds it.
        self.python = python or pytriton_python()
        self.report_path = self.state_dir / "loadgen-report.json"
        self.log_path = self.state_dir / "loadgen.log"
        self.process: Optional[ManagedProcess] = None
        self.report: Optional[dict[str, Any]] = None

    def _argv(self) -> list[str]:
        argv = [self.python, str(HERE / "triton" / "loadgen.py"), "--model", self.model,
                "--workers", str(self.workers), "--max-seconds", str(self.max_seconds),
                "--max-requests", str(self.max_requests), "--timeout", str(self.timeout),
                "--report", str(self.report_path), "--input", self.input_name, "--window", str(self.window_s),
                "--batch", str(self.batch)]
        for network in self.allow_networks:
            argv += ["--allow-network", network]
        if self.fresh_connections:
            argv.append("--fresh-connections")
        if self.live_path:
            argv += ["--live", str(self.live_path)]
        for u in self.urls:
            argv += ["--url", u]
        for s, r in self.profile:
            argv += ["--step", f"{s:g}:{r:g}"]
        return argv

    def start(self) -> "LoadGenerator":
        self.report_path.unlink(missing_ok=True)
        self.process = ManagedProcess(self._argv(), self.log_path)
        self.process.start()
        return self

    def wait(self, timeout: Optional[float] = None) -> dict[str, Any]:
        assert self.process is not None and self.process.proc is not None, "start() first"
        try:
            self.process.proc.wait(timeout=timeout or self.max_seconds + 30)
        finally:
            self.process.stop(timeout=5)
        if self.process.returncode != 0 or not self.report_path.exists():
            raise ServiceError(f"loadgen failed ({self.process.returncode})\n{self.process.log_tail()}")
        self.report = json.loads(self.report_path.read_text())
        return self.report

    def run(self) -> dict[str, Any]:
        return self.start().wait()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def __enter__(self) -> "LoadGenerator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "HOST", "ServiceError", "Service", "ManagedProcess", "Postgres", "PgBouncer", "Redis", "Kafka", "Prometheus",
    "TritonServer", "LoadGenerator", "RespError", "cache_dir", "free_port", "port_open", "wait_until",
    "fill_placeholders", "ini_override", "retarget_databases", "run_psql", "http_get", "http_post",
]
