"""A throwaway PostgreSQL cluster (initdb + postgres) and psql."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from .net import HOST, ServiceError, free_port
from .process import INSTALL_HINT, PathLike, Service, hand_over, require_binary, service_user, short_socket_dir


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
