"""The database check through the pooler: what each answer makes of the pooler's state, where it logs in, its
cadence, and the password never in a message."""

from __future__ import annotations

import base64

import psycopg
import pytest
from pydantic import SecretStr

from aifleet.api import AIService
from aifleet.api.dbcheck import CheckTarget, DatabaseCheck
from aifleet.clients import dbcheck
from aifleet.reconciler.dbchecks import FAILING_EVERY_SECONDS, HEALTHY_EVERY_SECONDS, DatabaseChecks
from aifleet.reconciler.sync import _report_problems, component_states
from aifleet.renderer import render_all
from aifleet.renderer.component import ComponentState
from aifleet.renderer.pgbouncer import PgBouncer, check_target, with_database

PASSWORD = 'pw "with" quotes@and/slashes'
PODS = ComponentState("Ready", "2/2 pods available, 2 ready, 2 updated", True)
SERVER = "db.data.svc:5433"
LOGIN_RETRY = "server login has been failing, try again later (server_login_retry)"


def _ais(**pgbouncer) -> AIService:
    spec = {
        "inference": {"modelRepository": {"uri": "s3://m/shop"}},
        "pgbouncer": {"databaseHost": "db.data.svc", "databasePort": 5433, "databaseName": "orders", "user": "app",
                      "passwordSecretRef": {"name": "db-creds", "key": "password"}, **pgbouncer},
    }
    return AIService.model_validate({"metadata": {"name": "shop", "namespace": "prod"}, "spec": spec})


def _check(outcome: str, error: str = "", seconds: float = 0.0) -> DatabaseCheck:
    return DatabaseCheck.model_validate(
        {"outcome": outcome, "error": error, "pooler": "10.96.0.20:5432", "server": SERVER, "seconds": seconds}
    )


def _target(password: str = PASSWORD, host: str = "10.96.0.20") -> CheckTarget:
    return CheckTarget(host=host, port=5432, database="orders", user="app", password=SecretStr(password), server=SERVER)


SECRETS = {"db-creds": {"data": {"password": base64.b64encode(PASSWORD.encode()).decode()}}}


def _cluster(ready: int = 2, cluster_ip: str | None = "10.96.0.20"):
    objects = {
        ("Deployment", "prod", "shop-pgbouncer"): {
            "metadata": {"generation": 1},
            "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": ready, "availableReplicas": ready,
                       "updatedReplicas": 2},
        },
        ("Service", "prod", "shop-pgbouncer"): {"spec": {"clusterIP": cluster_ip}},
    }
    return lambda kind, ns, name: objects.get((kind, ns, name))


# --- the verdicts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", [None, _check("ok")])
def test_a_database_that_answers_leaves_the_pods_state(check):
    assert with_database(PODS, check) == PODS


def test_pgbouncer_answering_with_an_error_is_degraded_naming_the_database_and_its_words():
    state = with_database(PODS, _check("refused", LOGIN_RETRY))
    assert state.state == "Degraded" and not state.serving
    assert state.message == (
        f'PgBouncer cannot reach or log in to the database at {SERVER}: it answers "{LOGIN_RETRY}" '
        f"(2/2 pods available, 2 ready, 2 updated)."
    )


def test_no_answer_within_the_timeout_is_degraded():
    state = with_database(PODS, _check("no_answer", "SELECT 1 got no answer", 3.0))
    assert state.state == "Degraded" and not state.serving
    assert state.message.startswith(f"PgBouncer gets no answer from the database at {SERVER}: SELECT 1 got no answer "
                                    "within 3 s")


def test_an_unreachable_pooler_does_not_claim_the_database_is_down():
    state = with_database(PODS, _check("unreachable", "connection timeout expired"))
    assert (state.state, state.serving) == ("Ready", True)
    assert state.message == (
        "2/2 pods available, 2 ready, 2 updated; the database check could not run: the operator cannot reach "
        "PgBouncer at 10.96.0.20:5432 (connection timeout expired)"
    )


@pytest.mark.parametrize("pods", [
    ComponentState("Progressing", "0/2 pods available, 0 ready, 2 updated", False),
    ComponentState("Degraded", "rollout stalled", True),
])
def test_pods_that_serve_nobody_or_are_degraded_already_are_reported_as_they_are(pods):
    assert with_database(pods, _check("refused", LOGIN_RETRY)) == pods


def test_the_pooler_component_reads_the_check_from_the_pass():
    ais = _ais()
    rendered = render_all(ais, secrets=SECRETS)
    states = component_states(ais, _cluster(), rendered, None, database=_check("refused", LOGIN_RETRY))
    assert states["pooler"].state == "Degraded" and SERVER in states["pooler"].message
    assert component_states(ais, _cluster(), rendered, None)["pooler"].state == "Ready"


def test_recovery_is_said_once_in_a_normal_event_and_turning_degraded_in_a_warning():
    ais, events = _ais(), []
    down = with_database(PODS, _check("refused", LOGIN_RETRY))
    _report_problems(ais, {"components": {"pooler": {"state": "Ready", "message": PODS.message}}}, {"pooler": down},
                     lambda *event: events.append(event))
    assert events == [("Warning", "PoolerDegraded", down.message)]
    events.clear()
    _report_problems(ais, {"components": {"pooler": {"state": "Degraded", "message": down.message}}}, {"pooler": PODS},
                     lambda *event: events.append(event))
    assert events == [("Normal", "PoolerRecovered",
                       f"PgBouncer reaches the database at {SERVER} again: SELECT 1 answers ({PODS.message}).")]
    # A pod problem that goes away is not a database that came back.
    assert PgBouncer().recovered(ais, ComponentState("Degraded", "rollout stalled", False), PODS) is None


# --- where it logs in -----------------------------------------------------------------------------------------


def test_the_check_logs_in_at_the_pooler_services_cluster_ip_with_the_pools_credentials():
    target = check_target(_ais(), _cluster(), SECRETS)
    assert target == _target()
    assert PASSWORD not in repr(target) and PASSWORD not in str(target)


@pytest.mark.parametrize("why", ["no ready pod", "no address yet", "headless", "no password", "pooler off"])
def test_no_check_without_a_ready_pod_an_address_a_password_or_a_pooler(why):
    ais = _ais(enabled=False) if why == "pooler off" else _ais()
    lookup = _cluster(ready=0 if why == "no ready pod" else 2,
                      cluster_ip={"no address yet": None, "headless": "None"}.get(why, "10.96.0.20"))
    assert check_target(ais, lookup, {} if why == "no password" else SECRETS) is None


# --- the cadence ------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _engine(results):
    clock, calls = Clock(), []

    def check(target):
        calls.append(target)
        return results.pop(0)

    return DatabaseChecks(check=check, clock=clock, background=False), clock, calls


def test_a_check_is_due_at_once_then_on_its_cadence_and_never_twice_in_flight():
    engine, clock, calls = _engine([_check("ok"), _check("refused", LOGIN_RETRY), _check("ok")])
    key = ("prod", "shop")
    assert engine.observe(key, _target()) is None
    due = engine.due()
    assert due == [(key, _target())]
    assert engine.due() == []  # in flight: not started again, however many passes ask
    assert engine.observe(key, _target()) is None
    assert engine.run(*due[0]) is False  # ok after nothing: the status does not change, no wake
    assert engine.observe(key, _target()).outcome == "ok"
    clock.now += HEALTHY_EVERY_SECONDS - 1
    assert engine.due() == []
    clock.now += 1
    assert engine.run(*engine.due()[0]) is True  # the database went away: wake the worker
    clock.now += FAILING_EVERY_SECONDS - 1
    assert engine.due() == []
    clock.now += 1
    assert engine.run(*engine.due()[0]) is True  # back
    assert engine.observe(key, _target()).outcome == "ok"
    assert len(calls) == 3


def test_a_passes_observe_runs_no_check_and_none_is_no_work_for_a_fleet_without_poolers():
    engine, _, calls = _engine([])
    for _ in range(1000):
        assert engine.observe(("prod", "shop"), None) is None
    assert engine.due() == [] and calls == []


def test_a_new_target_forgets_the_old_answer_and_a_late_answer_about_it():
    engine, _, _ = _engine([_check("refused", LOGIN_RETRY)])
    key = ("prod", "shop")
    engine.observe(key, _target())
    (due,) = engine.due()
    engine.observe(key, _target(password="rotated"))  # the password changed while the check ran
    assert engine.run(*due) is False
    assert engine.observe(key, _target(password="rotated")) is None
    assert engine.due() == [(key, _target(password="rotated"))]


def test_a_pooler_turned_off_or_deleted_is_no_longer_checked():
    engine, _, _ = _engine([])
    engine.observe(("prod", "a"), _target())
    engine.observe(("prod", "b"), _target())
    engine.observe(("prod", "a"), None)
    engine.forget("prod", "b")
    assert engine.due() == []


def test_a_pooler_out_of_reach_is_said_only_when_the_next_check_cannot_reach_it_either():
    """A new Service is often not routed yet for the first check: no status change (and no write) for one miss."""
    engine, clock, _ = _engine([_check("unreachable", "refused"), _check("ok"), _check("unreachable", "refused"),
                                _check("unreachable", "refused")])
    key = ("prod", "shop")
    engine.observe(key, _target())
    assert engine.run(*engine.due()[0]) is False
    assert engine.observe(key, _target()) is None
    clock.now += FAILING_EVERY_SECONDS  # a miss is checked again soon
    assert engine.run(*engine.due()[0]) is False
    assert engine.observe(key, _target()).outcome == "ok"
    clock.now += HEALTHY_EVERY_SECONDS
    assert engine.run(*engine.due()[0]) is False
    assert engine.observe(key, _target()).outcome == "ok"
    clock.now += FAILING_EVERY_SECONDS
    assert engine.run(*engine.due()[0]) is True
    assert engine.observe(key, _target()).outcome == "unreachable"
    # It says nothing about the database: tried again on the healthy cadence, not the failing one.
    clock.now += FAILING_EVERY_SECONDS
    assert engine.due() == []
    clock.now += HEALTHY_EVERY_SECONDS - FAILING_EVERY_SECONDS
    assert len(engine.due()) == 1


def test_a_check_that_breaks_counts_as_one_that_could_not_run():
    def broken(target):
        raise RuntimeError("boom")

    clock = Clock()
    engine = DatabaseChecks(check=broken, clock=clock, background=False)
    engine.observe(("prod", "shop"), _target())
    assert engine.run(*engine.due()[0]) is False
    clock.now += FAILING_EVERY_SECONDS
    assert engine.run(*engine.due()[0]) is True
    assert engine.observe(("prod", "shop"), _target()).outcome == "unreachable"


# --- the client: never the password -------------------------------------------------------------------------


def test_a_closed_port_is_unreachable_and_no_message_holds_the_password(monkeypatch):
    def refuse(**kwargs):
        raise psycopg.OperationalError(f"connection to {kwargs['host']} failed with password={kwargs['password']}")

    monkeypatch.setattr(psycopg, "connect", refuse)
    result = dbcheck.check(_target(), connect_seconds=0.5, statement_seconds=0.5)
    assert result.outcome == "unreachable" and PASSWORD not in result.error and "<password>" in result.error
    state = with_database(PODS, result)
    assert PASSWORD not in state.message and PASSWORD not in repr(result)


def test_pgbouncers_own_error_is_refused_with_its_words(monkeypatch):
    class Diag:
        message_primary = f"{LOGIN_RETRY} {PASSWORD}"

    class PoolerError(psycopg.OperationalError):
        sqlstate = "08P01"
        diag = Diag()

    def answer(**kwargs):
        raise PoolerError("server said no")

    monkeypatch.setattr(psycopg, "connect", answer)
    result = dbcheck.check(_target(), connect_seconds=0.5, statement_seconds=0.5)
    assert result.outcome == "refused" and result.error == f"{LOGIN_RETRY} <password>"
    assert PASSWORD not in with_database(PODS, result).message
