"""The components of an AIService, in the order the status lists them. A new component registers here."""

from __future__ import annotations

from .component import Component
from .inference import Triton
from .kafka import KafkaTopics
from .pgbouncer import PgBouncer
from .redis import Redis

COMPONENTS: tuple[Component, ...] = (Triton(), PgBouncer(), Redis(), KafkaTopics())
