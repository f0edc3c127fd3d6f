"""redis-server with the caller's (the operator's rendered) redis.conf, and a redis-py client for it."""

from __future__ import annotations

import urllib.parse
from typing import Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .net import HOST, free_port
from .process import PathLike, Service, require_binary

_USE_OWN = ""


class Redis(Service):
    """redis-server with the caller's redis.conf text; the harness owns port, bind
    (127.0.0.1), dir (``<state>/data``), daemonize, logging, pidfile and unix socket.

    ``password`` is only used for ``url`` and ``client()`` defaults; the server's auth
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
        with self.client(password=None) as client:
            try:
                return bool(client.ping())
            except redis.AuthenticationError:
                return True  # NOAUTH also proves the server is up and serving

    def client(self, *, password: Optional[str] = _USE_OWN, timeout: float = 5.0) -> redis.Redis:
        """A redis-py client (str replies) for this server; use it as a context manager to close it.

        ``password`` defaults to ``self.password``; None means "don't authenticate". A refused
        login raises ``redis.AuthenticationError`` at once: the client does not retry, so a test
        can assert on refusals without waiting out redis-py's backoff. RESP2, as redis-cli and the
        operator's clients speak it: a refusal is the command's own reply (NOAUTH, WRONGPASS), not
        that of a RESP3 handshake.
        """
        return redis.Redis(host=HOST, port=self.port, password=self.password if password == _USE_OWN else password,
                           socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
                           retry=Retry(NoBackoff(), 0), protocol=2)
