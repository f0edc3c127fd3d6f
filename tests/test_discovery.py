"""API discovery, remembered: one request per refresh, the last answer kept when the API server cannot answer."""

from __future__ import annotations

from aifleet.clients.kinds import HTTPROUTE, Kind
from aifleet.clients.kube import Discovery, Kube, KubeError


class _Kube(Kube):
    def __init__(self) -> None:
        self.answers: list[bool | KubeError] = []
        self.asked = 0

    def serves(self, kind: Kind) -> bool:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, KubeError):
            raise answer
        return answer


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_answer_is_kept_for_the_ttl_then_asked_again():
    kube, clock = _Kube(), _Clock()
    kube.answers = [False, True]
    discovery = Discovery(kube, ttl=300, clock=clock)
    assert discovery.serves(HTTPROUTE) is False
    clock.now = 299
    assert discovery.serves(HTTPROUTE) is False and kube.asked == 1
    clock.now = 300
    assert discovery.serves(HTTPROUTE) is True and kube.asked == 2  # the CRD was installed meanwhile


def test_a_failed_discovery_keeps_the_last_answer():
    kube, clock = _Kube(), _Clock()
    kube.answers = [KubeError(503, "unavailable"), True, KubeError(0, "unreachable")]
    discovery = Discovery(kube, ttl=10, clock=clock)
    assert discovery.serves(HTTPROUTE) is False  # nothing known yet: not served
    clock.now = 10
    assert discovery.serves(HTTPROUTE) is True
    clock.now = 20
    assert discovery.serves(HTTPROUTE) is True


def test_a_refresh_asks_now_and_says_whether_the_answer_changed():
    kube, clock = _Kube(), _Clock()
    kube.answers = [False, False, True, KubeError(503, "unavailable"), False]
    discovery = Discovery(kube, ttl=300, clock=clock)
    assert discovery.serves(HTTPROUTE) is False
    assert discovery.refresh(HTTPROUTE) is False and kube.asked == 2  # asked within the TTL all the same
    assert discovery.refresh(HTTPROUTE) is True  # installed: every AIService is reconciled
    assert discovery.serves(HTTPROUTE) is True and kube.asked == 3  # the refresh's answer serves the passes
    assert discovery.refresh(HTTPROUTE) is False  # cannot tell: the last answer stands, nothing to redo
    assert discovery.refresh(HTTPROUTE) is True  # removed
    assert discovery.serves(HTTPROUTE) is False
