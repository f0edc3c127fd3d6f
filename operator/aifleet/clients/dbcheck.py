"""The edge to PostgreSQL through PgBouncer: one login and `SELECT 1`, bounded in time.

What PgBouncer 1.18 answers while its server is down, found with the real processes: a client already waiting for a
server stays in the queue until `query_wait_timeout` (120 s by default); later logins were answered at once with
`server login has been failing, try again later (server_login_retry)` (SQLSTATE 08P01) (e2e/test_dataplane.py, and
some runs on the real pods) or kept waiting themselves (other runs of e2e/test_real_pooler.py), until a retry (every
`server_login_retry`, 15 s) reached the server. So the check bounds the login and the statement itself
(psycopg waits for as long as PgBouncer keeps the client queued); an error that carries a SQLSTATE is PgBouncer's
answer, one without is the connection's own failure, unless the port takes TCP connections and only the login timed
out.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from typing import TYPE_CHECKING

from ..api.dbcheck import CheckTarget, DatabaseCheck, redact

if TYPE_CHECKING:
    from psycopg import pq

log = logging.getLogger("aifleet.dbcheck")

CONNECT_SECONDS = 3.0
STATEMENT_SECONDS = 3.0


def check(target: CheckTarget, connect_seconds: float = CONNECT_SECONDS,
          statement_seconds: float = STATEMENT_SECONDS) -> DatabaseCheck:
    """Log in through the pooler and run `SELECT 1`; never raises. Blocks for at most about the two timeouts."""
    # Imported by the first check: libpq and psycopg are several MiB of the operator's memory, and most fleets
    # have no pooler to check.
    import psycopg
    password = target.password.get_secret_value()
    pooler = f"{target.host}:{target.port}"

    def result(outcome: str, error: str = "", seconds: float = 0.0) -> DatabaseCheck:
        return DatabaseCheck.model_validate({"outcome": outcome, "error": redact(error, password), "pooler": pooler,
                                             "server": target.server, "seconds": seconds})

    try:
        conn = psycopg.connect(
            host=target.host, port=target.port, dbname=target.database, user=target.user, password=password,
            # libpq counts whole seconds (at least 2) per address; psycopg enforces it over the whole login.
            connect_timeout=max(2, round(connect_seconds)), autocommit=True, application_name="aifleet-check",
        )
    except psycopg.Error as exc:
        message = exc.diag.message_primary if exc.sqlstate else None
        if message:  # PgBouncer (or the server through it) answered with an error
            return result("refused", message)
        text = " ".join(str(exc).split())
        if "timeout" in text.lower() and _answers_tcp(target.host, target.port, connect_seconds):
            # It takes connections but did not finish the login: it waits for a server (a new pool needs one).
            return result("no_answer", "the login did not complete", connect_seconds)
        return result("unreachable", text)
    except OSError as exc:
        return result("unreachable", f"{type(exc).__name__}: {exc}")
    try:
        error = _select_one(conn.pgconn, statement_seconds)
    except (psycopg.Error, OSError) as exc:
        return result("unreachable", " ".join(str(exc).split()))
    finally:
        # No cancel request: PgBouncer cannot cancel a query that waits for a server, and psycopg would wait 5 s
        # for it. Closing the connection takes the query out of PgBouncer's queue.
        conn.close()
    if error is None:
        return result("ok")
    if error == "":
        return result("no_answer", "SELECT 1 got no answer", statement_seconds)
    return result("refused", error)


def _select_one(pgconn: pq.abc.PGconn, seconds: float) -> str | None:
    """Send `SELECT 1` and wait at most `seconds`: None when it answered, "" when nothing came, else the error."""
    from psycopg import pq
    pgconn.send_query(b"SELECT 1")
    while pgconn.flush():
        pass
    deadline = time.monotonic() + seconds
    while True:
        if pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pgconn.socket], [], [], remaining)[0]:
                return ""
            pgconn.consume_input()
            continue
        answer = pgconn.get_result()
        if answer is None:
            return None
        if answer.status == pq.ExecStatus.FATAL_ERROR:
            words = answer.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or answer.error_message
            return words.decode(errors="replace").strip() or "error without a message"


def _answers_tcp(host: str, port: int, seconds: float) -> bool:
    """Whether anything takes TCP connections there: tells a pooler that keeps a login waiting from no pooler."""
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return True
    except OSError:
        return False
