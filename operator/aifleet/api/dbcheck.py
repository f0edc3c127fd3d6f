"""The database check through the pooler: where it logs in, and what it found.

PgBouncer's probes are TCP: its pods stay ready while the PostgreSQL behind it is down and every query fails. So the
operator logs in through the pooler's own Service and runs `SELECT 1` (clients/dbcheck.py), and the pooler's state
reads the last answer as data (renderer/pgbouncer.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

# ok: SELECT 1 answered. refused: PgBouncer answered with an error (it cannot reach or log in to the server).
# no_answer: PgBouncer took the connection but gave no answer in time (clients wait in its queue).
# unreachable: the operator could not talk to PgBouncer at all (e.g. it runs outside the cluster network): nothing
# is known about the database.
Outcome = Literal["ok", "refused", "no_answer", "unreachable"]


class CheckTarget(BaseModel):
    """Where and as whom the check logs in: the pooler Service's ClusterIP and port, the pool's database and user."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int
    database: str
    user: str
    password: SecretStr  # never printed: repr and str show asterisks
    server: str  # the database behind the pool, "host:port", for messages


class DatabaseCheck(BaseModel):
    """One check's result. `error` is what PgBouncer or the connection said, with the password taken out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    error: str = ""
    pooler: str = ""  # "ip:port" the check went to
    server: str = ""  # "host:port" of the database behind the pool
    seconds: float = 0.0  # the timeout that applied, for a no_answer message

    @property
    def database_down(self) -> bool:
        return self.outcome in ("refused", "no_answer")


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of `secret` replaced: an error may quote what it was given."""
    return text.replace(secret, "<password>") if secret else text
