"""Server processes: each in its own process group, logging to a file, stopped for sure; the Service base class."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .net import ServiceError, wait_until

# e2e/services: the Kafka pom, the Triton model server and load generator live there.
HERE = Path(__file__).resolve().parents[1]
INSTALL_HINT = "run e2e/services/install.sh first"

PathLike = Union[str, Path]


def cache_dir() -> Path:
    """Root of the aifleet cache that install.sh fills (same rule as the script)."""
    if os.environ.get("AIFLEET_CACHE"):
        return Path(os.environ["AIFLEET_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "aifleet"



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
