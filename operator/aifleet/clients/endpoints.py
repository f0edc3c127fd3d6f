"""Which endpoints the operator may connect to on behalf of an AIService (and send its credentials to).

Whoever may create an AIService chooses `spec.autoscaling.metrics.address` and `spec.kafka.bootstrapServers`, and
the operator sends that namespace's Secrets there (the bearer token of `metrics.authSecretRef`, the Kafka SASL
credentials). Without a limit, the operator is a confused deputy: point the address at your own server and read
the Secret. The chart's `allowedEndpoints` (the operator's `--allow-endpoint`, or `AIFLEET_ALLOWED_ENDPOINTS`
comma-separated) is a list of host patterns, `fnmatch`-style and case-insensitive (`*.monitoring.svc`,
`kafka-*.kafka.svc.cluster.local`, `10.0.3.*`), each optionally with `:port`. Empty allows every endpoint (the
behaviour before the list existed). A refused endpoint gets no connection at all, so no credential.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV = "AIFLEET_ALLOWED_ENDPOINTS"
METRICS_FIELD = "spec.autoscaling.metrics.address"
KAFKA_FIELD = "spec.kafka.bootstrapServers"


class EndpointRefusedError(LookupError):
    """An endpoint outside the allow-list. A LookupError, as a missing Secret is: no reading, said in words."""


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    hostport = hostport.strip()
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        return host.lower(), rest[1:] if rest.startswith(":") else None
    if hostport.count(":") == 1:
        host, port = hostport.split(":")
        return host.lower(), port
    return hostport.lower(), None


def url_host_port(address: str) -> tuple[str, str | None]:
    """Host and port of a URL (`http://user:pw@host:9090/x` -> ("host", "9090")); default ports filled in."""
    parts = urlsplit(address)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return host, None if port is None else str(port)


@dataclass(frozen=True)
class EndpointPolicy:
    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> EndpointPolicy:
        return cls(tuple(p.strip().lower() for p in text.split(",") if p.strip()))

    @classmethod
    def from_env(cls) -> EndpointPolicy:
        return cls.parse(os.environ.get(ENV, ""))

    def allows(self, host: str, port: str | None) -> bool:
        if not self.patterns:
            return True
        for pattern in self.patterns:
            want_host, want_port = _split_host_port(pattern)
            if fnmatch.fnmatchcase(host.lower(), want_host) and (want_port is None or want_port == port):
                return True
        return False

    def _refusal(self, field: str, shown: str, hosts: list[tuple[str, str | None]]) -> str | None:
        refused = [f"{h}:{p}" if p else h for h, p in hosts if not self.allows(h, p)]
        if not refused:
            return None
        return (
            f"{field}: the operator is not allowed to connect to {', '.join(refused)} (in {shown!r}); allowed are"
            f" {', '.join(self.patterns)} (the chart's allowedEndpoints). Nothing was sent there."
        )

    def metrics_refusal(self, address: str) -> str | None:
        """Why `metrics.address` may not be used, or None."""
        return _metrics_refusal(self, address)

    def kafka_refusal(self, bootstrap_servers: str) -> str | None:
        """Why `bootstrapServers` may not be used (every server must be allowed), or None."""
        servers = [_split_host_port(s) for s in bootstrap_servers.split(",") if s.strip()]
        return self._refusal(KAFKA_FIELD, bootstrap_servers, servers)


@functools.lru_cache(maxsize=4096)
def _metrics_refusal(policy: EndpointPolicy, address: str) -> str | None:
    # Every poll of every AIService asks; the answer depends only on these two, so each address is parsed once.
    return policy._refusal(METRICS_FIELD, _without_userinfo(address), [url_host_port(address)])


def _without_userinfo(address: str) -> str:
    parts = urlsplit(address)
    if parts.username is None and parts.password is None:
        return address
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
