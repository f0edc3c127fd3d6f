"""A child the API server refuses: the AIService says which child, which field and what the API server said,
instead of raising before any status is written."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from aifleet.clients.kube import Cause, KubeError, status_error
from aifleet.reconciler.observed import AppliedCache
from aifleet.reconciler.sync import reconcile
from conftest import EXAMPLES
from test_canary_reconcile import Store

NS, NAME = "default", "sentiment"

# A 422 as kube-apiserver writes it for a Deployment whose container asks for more CPU than its limit.
INVALID_DEPLOYMENT = json.dumps({
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
    "message": 'Deployment.apps "sentiment-triton" is invalid: spec.template.spec.containers[0].resources.requests: '
               'Invalid value: "2": must be less than or equal to cpu limit of 1',
    "reason": "Invalid",
    "details": {"name": "sentiment-triton", "group": "apps", "kind": "Deployment", "causes": [{
        "reason": "FieldValueInvalid",
        "message": 'Invalid value: "2": must be less than or equal to cpu limit of 1',
        "field": "spec.template.spec.containers[0].resources.requests",
    }]},
    "code": 422,
})
# What a ValidatingAdmissionPolicy's denial looks like: a cause with a message and no field.
POLICY_DENIAL = json.dumps({
    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
    "message": "deployments.apps \"sentiment-triton\" is forbidden: ValidatingAdmissionPolicy 'no-big' with binding "
               "'no-big' denied request: at most 2 replicas here",
    "details": {"name": "sentiment-triton", "group": "apps", "kind": "deployments", "causes": [{
        "message": "ValidatingAdmissionPolicy 'no-big' with binding 'no-big' denied request: at most 2 replicas here",
    }]},
})


def test_the_status_body_gives_reason_fields_and_messages():
    exc = status_error(422, INVALID_DEPLOYMENT, "Unprocessable Entity")
    assert (exc.status, exc.reason, exc.refused) == (422, "Invalid", True)
    assert exc.causes == (Cause("spec.template.spec.containers[0].resources.requests",
                                'Invalid value: "2": must be less than or equal to cpu limit of 1'),)
    assert str(exc).startswith('Deployment.apps "sentiment-triton" is invalid')


@pytest.mark.parametrize("body", ["<html>bad gateway</html>", "", None, "[1, 2]", '{"details": "odd"}'])
def test_a_body_that_is_no_status_still_gives_an_error(body):
    exc = status_error(502, body, "Bad Gateway")
    assert exc.status == 502 and exc.causes == () and not exc.refused
    assert str(exc) == "Bad Gateway"


@pytest.mark.parametrize("status, refused", [(400, True), (403, True), (422, True), (409, False), (429, False),
                                             (500, False), (503, False), (0, False)])
def test_only_refusals_of_the_object_itself_count_as_refused(status, refused):
    assert KubeError(status, "x").refused is refused


class Refusing(Store):
    """The in-memory API of the canary tests, refusing the Deployment with a recorded body."""

    def __init__(self, aiservice, body: str) -> None:
        super().__init__(aiservice)
        self.body = body
        self.tries = 0

    def apply(self, manifest):
        if manifest["kind"] == "Deployment":
            self.tries += 1
            raise status_error(422, self.body, "Unprocessable Entity")
        return super().apply(manifest)


def _store(body: str) -> Refusing:
    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    doc["metadata"].update(uid="0000-1111", generation=1, namespace=NS)
    return Refusing(doc, body)


def _pass(store: Refusing, applied: AppliedCache, events: list):
    return reconcile(copy.deepcopy(store.objects[("AIService", NS, NAME)]), store.lookup, store, applied,
                     lambda *e: events.append(e))


def _condition(store: Store, type_: str) -> dict:
    status = store.objects[("AIService", NS, NAME)]["status"]
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def test_a_refused_deployment_is_degraded_with_the_child_the_field_and_the_message():
    store, applied, events = _store(INVALID_DEPLOYMENT), AppliedCache(), []
    first = _pass(store, applied, events)  # creates the other children; the refusal does not stop them
    assert "Service/sentiment-triton" in first.applied and store.deployment("sentiment-triton") is None
    assert first.waiting_on_user  # a policy or the spec must change: look again soon
    second = _pass(store, applied, events)  # nothing left to create: the status is written
    assert second.status_written and second.error is None
    degraded = _condition(store, "Degraded")
    assert degraded["status"] == "True"
    expected = ("the API server refused Deployment sentiment-triton: spec.template.spec.containers[0].resources."
                'requests: Invalid value: "2": must be less than or equal to cpu limit of 1')
    assert expected in degraded["message"]
    inference = _condition(store, "InferenceReady")
    assert (inference["status"], inference["reason"], inference["message"]) == ("False", "Degraded", expected)
    assert _condition(store, "Ready")["status"] == "False"
    warnings = [e for e in events if e[0] == "Warning"]
    assert warnings == [("Warning", "InferenceDegraded", expected)]

    # A quiet pass while it stays refused: the apply is tried again, nothing else is written or said.
    third = _pass(store, applied, events)
    assert not third.status_written and store.tries == 3 and len([e for e in events if e[0] == "Warning"]) == 1


def test_a_denial_without_a_field_says_the_policys_message():
    store, applied, events = _store(POLICY_DENIAL), AppliedCache(), []
    _pass(store, applied, events)
    _pass(store, applied, events)
    assert _condition(store, "InferenceReady")["message"] == (
        "the API server refused Deployment sentiment-triton: ValidatingAdmissionPolicy 'no-big' with binding 'no-big' "
        "denied request: at most 2 replicas here")


def test_a_server_error_still_fails_the_pass_for_a_retry():
    class Failing(Store):
        def apply(self, manifest):
            raise status_error(500, '{"kind": "Status", "message": "etcdserver: request timed out", "code": 500}', "")

    doc = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    doc["metadata"].update(uid="0000-1111", generation=1, namespace=NS)
    with pytest.raises(KubeError, match="etcdserver: request timed out"):
        reconcile(copy.deepcopy(doc), Failing(doc).lookup, Failing(doc), AppliedCache(), lambda *e: None)
