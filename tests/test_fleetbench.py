"""The fleet benchmark's pure helpers: percentiles, audit summaries and the report table (no cluster)."""

from __future__ import annotations

import collections

from fleetbench.audit import Req, fmt_counts, status_changes, why_written, writes_by_target
from fleetbench.common import pct, rfc3339
from fleetbench.report import render_markdown


def test_pct_is_nearest_rank():
    runs = [float(x) for x in range(20, 0, -1)]
    assert pct(runs, 50) == 10.0
    assert pct(runs, 99) == 20.0, "p99 of 20 runs is the slowest run"
    assert pct([], 50) is None


def test_rfc3339_reads_the_api_servers_timestamps():
    assert rfc3339("2026-01-01T00:00:00Z") == 1767225600.0
    assert rfc3339("2026-01-01T00:00:00.250000Z") == 1767225600.25


def test_status_changes_name_conditions_by_type_and_nested_keys():
    before = {("ns", "a"): {"conditions": [{"type": "Ready", "status": "True"}], "autoscaling": {"desired": 1}},
              ("ns", "b"): {"replicas": 1}}
    after = {("ns", "a"): {"conditions": [{"type": "Ready", "status": "False"}], "autoscaling": {"desired": 2}},
             ("ns", "b"): {"replicas": 1}}
    assert status_changes(before, after) == {("ns", "a"): {"conditions[Ready]", "autoscaling.desired"}}


def test_writes_on_unchanged_objects_are_counted_as_no_op_writes():
    changes = {("ns", "a"): {"conditions[Ready]"}}
    writes = collections.Counter({("ns", "a"): 2, ("ns", "b"): 3})
    assert why_written(changes, writes) == {
        "objects_status_changed": 1, "status_fields_changed": {"conditions[Ready]": 1},
        "writes_on_unchanged_objects": 3,
    }


def test_writes_by_target_counts_only_writes_with_their_subresource():
    reqs = [Req(0, "u", "patch", "aiservices", "status", "ns", "a", 200),
            Req(0, "u", "patch", "aiservices", "status", "ns", "b", 200),
            Req(0, "u", "get", "aiservices", "", "ns", "a", 200),
            Req(0, "u", "create", "deployments", "", "ns", "a-triton", 201)]
    assert writes_by_target(reqs) == {"patch aiservices/status": 2, "create deployments": 1}


def test_fmt_counts_shortens_long_lists():
    assert fmt_counts({}) == "0"
    assert fmt_counts({"get": 1200, "list": 3}, limit=1) == "get 1,200, … (1 more)"


def test_the_report_has_a_column_per_run_and_marks_the_quiet_target():
    def run(label: str, quiet_writes: int) -> dict:
        return {"label": label, "sizes": [100],
                "phases": {"quiet": {"window_s": 95, "resync_s": 30, "operator_writes": quiet_writes}}}

    text = render_markdown([run("before", 4), run("after", 0)])
    row = next(line for line in text.splitlines() if line.startswith("| **writes by the operator**"))
    before, after = row.split(" | ")[-2:]
    assert "❌" in before and before.startswith("4 ")
    assert "✅" in after and after.startswith("0 ")


def test_the_control_planes_usage_is_stated_per_minute_while_quiet_and_in_total_over_a_convergence():
    usage = {"kube-apiserver": {"cpu_s": 30.0, "peak_rss_mb": 900.0}, "etcd": {"cpu_s": 6.0, "peak_rss_mb": 120.0}}
    phases = {
        "converge_100": {"n": 100, "converged": True, "window_s": 200.0, "control_plane": usage},
        "quiet": {"window_s": 120.0, "resync_s": 30, "operator_writes": 0, "operator_cpu_s": 2.0,
                  "operator_peak_rss_mb": 250.0, "control_plane": usage},
    }
    text = render_markdown([{"label": "a", "sizes": [100], "phases": phases}])
    quiet = next(line for line in text.splitlines() if line.startswith("| … API server / etcd while quiet"))
    assert quiet.split(" | ")[-1].rstrip(" |") == "15.0 s/min, 900 MiB / 3.0 s/min, 120 MiB"
    converge = next(line for line in text.splitlines() if line.startswith("| API server / etcd over the convergence"))
    assert converge.split(" | ")[-1].rstrip(" |") == "30.0 s, 900 MiB / 6.0 s, 120 MiB"
    detail = next(line for line in text.splitlines() if line.startswith("- control plane beside the operator, quiet"))
    assert "operator 2.0 CPU-s (1.0/min), peak RSS 250 MiB; kube-apiserver 30.0 CPU-s (15.0/min)" in detail


def test_the_audit_log_is_read_on_across_the_api_servers_rotation(tmp_path):
    import json

    from fleetbench.audit import Audit

    def line(i: int) -> str:
        return json.dumps({"auditID": str(i), "requestReceivedTimestamp": f"2026-12-05T10:00:{i:02d}.000000Z",
                           "user": {"username": "op"}, "verb": "patch", "objectRef": {"resource": "aiservices"},
                           "responseStatus": {"code": 200}}) + "\n"

    log = tmp_path / "audit.log"
    log.write_text(line(1) + line(2))
    audit = Audit(log)
    mark = audit.offset()
    with log.open("a") as f:
        f.write(line(3))
    log.rename(tmp_path / "audit-2026-12-05T10-00-04.000.log")  # as the API server rotates it
    log.write_text(line(5))
    with log.open("a") as f:
        f.write(line(6))
    t0 = rfc3339("2026-12-05T10:00:00Z")
    assert [r.ts - t0 for r in audit.read(mark, t0, t0 + 60)] == [3.0, 5.0, 6.0]


def test_the_quiet_cpu_of_a_larger_fleet_is_judged_per_1000_aiservices():
    def run(label: str, n: int, per_min: float) -> dict:
        return {"label": label, "sizes": [n], "phases": {"quiet": {
            "n": n, "window_s": 305, "resync_s": 300, "operator_writes": 0, "operator_cpu_s_per_min": per_min}}}

    text = render_markdown([run("a", 1000, 1.4), run("b", 10000, 9.0)])
    row = next(line for line in text.splitlines() if line.startswith("| operator CPU seconds per minute while quiet"))
    thousand, ten_thousand = row.split(" | ")[-2:]
    assert thousand.startswith("1.4 s/min") and "❌" in thousand
    assert ten_thousand.startswith("9.0 s/min (0.90 per 1,000)") and "✅" in ten_thousand
