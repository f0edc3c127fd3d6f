"""The alerts (charts/aifleet-operator/files/aifleet-rules.yaml): valid for Prometheus, unit-tested with
`promtool test rules` (tests/prometheus/), and built from series that exist.

promtool comes with Debian's `prometheus` package (e2e/services/install.sh installs it). Without it these tests
skip, unless AIFLEET_REQUIRE_PROMTOOL is set, as `make test` does: there a missing promtool is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from aifleet.api.children import triton_pod_regex
from aifleet.observability import metrics
from conftest import ROOT

RULES = ROOT / "charts" / "aifleet-operator" / "files" / "aifleet-rules.yaml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "aifleet-rules.test.yaml"
TRITON_METRICS = {"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us"}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("AIFLEET_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is missing: run e2e/services/install.sh (Debian's prometheus package)")
        pytest.skip("promtool is missing: run e2e/services/install.sh (Debian's prometheus package)")
    return found


def run(promtool: str, *args: str) -> str:
    proc = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_promtool_checks_the_rules(promtool):
    out = run(promtool, "check", "rules", str(RULES))
    assert f"SUCCESS: {len(alerts())} rules found" in out, out


def test_promtool_unit_tests_pass(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", str(RULE_TESTS))


def test_every_alert_is_tested_firing_and_silent():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no test where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no test where it stays silent"
        # A firing case must check what the person on call reads, not only the labels.
        assert any(a.get("exp_annotations") for c in mine for a in c.get("exp_alerts") or []), name


def test_every_alert_says_what_to_look_at():
    for alert in alerts():
        notes = alert["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), alert["alert"]
        assert "kubectl" in notes["description"], alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]


def test_the_alerts_use_only_series_that_exist():
    # A counter's family is named without `_total`; one with labels and no child yet has no samples.
    exported = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.REGISTRY.collect()}
    used = {name for alert in alerts() for name in re.findall(r"\b(aifleet_[a-z_]+|nv_[a-z_]+)\b", alert["expr"])}
    assert used - TRITON_METRICS <= exported, sorted(used - TRITON_METRICS - exported)
    assert used & TRITON_METRICS == TRITON_METRICS


def test_triton_series_are_attributed_by_the_renderers_pod_names():
    pattern = triton_pod_regex("(.+)")
    for alert in alerts():
        for regex in re.findall(r'"pod", "([^"]+)"', alert["expr"]):
            assert regex == pattern, (alert["alert"], regex)
        for regex in re.findall(r'pod=~"([^"]+)"', alert["expr"]):
            assert regex == triton_pod_regex(".+"), (alert["alert"], regex)


def test_the_readme_lists_every_alert():
    readme = (ROOT / "README.md").read_text()
    for alert in alerts():
        assert f"| `{alert['alert']}` |" in readme, alert["alert"]
