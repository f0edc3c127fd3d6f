"""pgbouncer with the caller's (the operator's rendered) pgbouncer.ini, and the ini rewriting it needs."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
from typing import Any, Mapping, Optional

from .net import HOST, ServiceError, free_port, port_open
from .postgres import run_psql
from .process import PathLike, Service, hand_over, require_binary, service_user

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
