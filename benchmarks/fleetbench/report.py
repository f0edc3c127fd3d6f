"""The report: the markdown table over all saved runs (one column per --label) and the machine it ran on."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .audit import fmt_counts
from .common import ROOT, run


def machine_info() -> dict:
    mem = next((int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), 0)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "mem_gib": round(mem / 1024 / 1024, 1), "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "kopf": _version("kopf"),
    }


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def git_info(src: Path = ROOT) -> str:
    """The operator code the run used: commit, plus which operator files differ from it (and a digest of the diff)."""
    try:
        head = run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"]).stdout.strip()
    except Exception:  # noqa: BLE001 - e.g. an exported tree (git archive) for --operator-src
        return f"tree {src}"
    try:
        import hashlib

        files = run(["git", "-C", str(src), "diff", "HEAD", "--name-only", "--", "operator"]).stdout.split()
        if not files:
            return head
        digest = hashlib.sha256(run(["git", "-C", str(src), "diff", "HEAD", "--", "operator"]).stdout.encode()).hexdigest()[:8]
        return f"{head} + uncommitted {', '.join(f.removeprefix('operator/aifleet/') for f in files)} (diff {digest})"
    except Exception:  # noqa: BLE001
        return head


def load_runs(directory: Path, current: dict | None) -> list[dict]:
    runs = {}
    for p in sorted(directory.glob("fleet-*.json"), key=lambda p: p.stat().st_mtime):
        with contextlib.suppress(Exception):
            r = json.loads(p.read_text())
            runs[r["label"]] = r
    if current is not None:
        runs[current["label"]] = json.loads(json.dumps(current, default=str))
    order = sorted(runs, key=lambda l: (l != "before", l != "after", l))
    return [runs[l] for l in order]


def _s(x: Any, unit: str = "s", digits: int = 2) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}{' ' + unit if unit else ''}"
    return f"{x:,}{' ' + unit if unit else ''}"


def render_markdown(runs: list[dict]) -> str:
    big = max((max(r.get("sizes") or [0]) for r in runs), default=0)
    rows: list[tuple[str, str, Callable[[dict], str]]] = []

    def ph(r: dict, name: str) -> dict:
        return (r.get("phases") or {}).get(name) or {}

    def mark(ok: bool | None, text: str) -> str:
        return text if ok is None else f"{text} {'✅' if ok else '❌'}"

    lat = lambda r: ph(r, "latency")  # noqa: E731
    rows.append(("**Apply-to-ready, 1 AIService** (create → child exists, seen on a watch)", "", lambda r: f"{lat(r).get('runs', '—')} runs"))
    rows.append(("create → Deployment, Service, PDB, ServiceAccount all exist, p50", "< 0.5 s",
                 lambda r: mark(None if lat(r).get("children_p50") is None else lat(r)["children_p50"] < 0.5, _s(lat(r).get("children_p50"), digits=3))))
    rows.append(("… p99 (slowest of the runs)", "", lambda r: _s(lat(r).get("children_p99"), digits=3)))
    rows.append(("create → `Ready=True`, p50 / p99", "", lambda r: f"{_s(lat(r).get('ready_p50'), digits=3)} / {_s(lat(r).get('ready_p99'), digits=3)}"))
    sizes = sorted({n for r in runs for n in r.get("sizes") or []})
    for n in sizes:
        c = lambda r, n=n: ph(r, f"converge_{n}")  # noqa: E731
        spread = next((ph(r, f"converge_{n}")["namespaces"] for r in runs if "namespaces" in ph(r, f"converge_{n}")), 10)
        rows.append((f"**Convergence, {n:,} AIServices** in {spread} namespaces", "", lambda r: ""))
        rows.append(("bulk create by the benchmark (16 threads, no client rate limit)", "", lambda r, c=c: _s(c(r).get("create_s"), digits=1)))
        rows.append(("all children applied by the operator (audit: its last 201)", "", lambda r, c=c: _s(c(r).get("all_children_s"), digits=1)))
        rows.append(("all Triton Deployments available (controller-manager, scheduler, KWOK)", "", lambda r, c=c: _s(c(r).get("all_available_s"), digits=1)))
        rows.append(("… floor without the operator: same children applied directly → all available", "",
                     lambda r, n=n: (lambda b: f"{_s(b.get('all_available_s'), digits=1)} (applied in {b.get('applied_s', 0):.1f} s)" if b else "not run (`--baseline`)")(ph(r, f"baseline_{n}"))))
        target = "< 60 s" if n == 1000 else ""
        rows.append(("**all `Ready`** (from the first create)", target,
                     lambda r, c=c, n=n: mark((c(r).get("all_ready_s") or 1e9) < 60 if n == 1000 and c(r) else None,
                                              _s(c(r).get("all_ready_s"), digits=1) if c(r).get("converged") else
                                              (f"not converged: {c(r).get('ready_count')}/{n} in {c(r).get('window_s', 0):.0f} s" if c(r) else "—"))))
        rows.append(("… the operator's overhead: all `Ready` − the floor (same run)", "",
                     lambda r, c=c, n=n: (lambda b: _s((c(r).get("all_ready_s") or 0) - b["all_available_s"], digits=1)
                                          if b.get("all_available_s") and c(r).get("converged") else "—")(ph(r, f"baseline_{n}"))))
        rows.append(("Ready after its Deployment turned available, p50 / p99", "p99 < 2 s" if n == 1000 else "",
                     lambda r, c=c, n=n: mark(c(r)["ready_after_available_p99_s"] < 2 if n == 1000 and c(r).get("ready_after_available_p99_s") is not None else None,
                                              f"{_s(c(r).get('ready_after_available_p50_s'), digits=1)} / {_s(c(r).get('ready_after_available_p99_s'), digits=1)}")))
        rows.append(("operator CPU seconds / peak RSS / peak threads", "RSS < 300 MiB" if n == 1000 else "", lambda r, c=c: f"{_s(c(r).get('operator_cpu_s'), digits=1)} / {_s(c(r).get('operator_peak_rss_mb'), 'MiB', 0)} / {_s(c(r).get('operator_peak_threads'), '')}" if c(r) else "—"))
        rows.append(("API server / etcd over the convergence: CPU seconds, peak RSS", "",
                     lambda r, c=c: _usage_cell(c(r), per_min=False)))
        rows.append(("API requests by the operator, by verb (audit)", "", lambda r, c=c: f"{c(r).get('operator_requests', 0):,}: {fmt_counts(c(r).get('operator_by_verb', {}))}" if c(r) else "—"))
        rows.append(("operator writes per AIService (audit) / Events per AIService", "", lambda r, c=c, n=n: f"{sum(v for k, v in c(r).get('operator_writes', {}).items()) / n:.1f} / {c(r).get('events_by_operator', 0) / n:.1f}" if c(r) else "—"))
        rows.append(("API requests by all users, by verb (audit)", "", lambda r, c=c: f"{c(r).get('all_requests', 0):,}: {fmt_counts(c(r).get('all_by_verb', {}), 5)}" if c(r) else "—"))
        rows.append(("Events created by the operator (Events API; not in the audit log)", "", lambda r, c=c: _s(c(r).get("events_by_operator"), "")))
    q = lambda r: ph(r, "quiet")  # noqa: E731
    rows.append(("**Quiet, the run's largest fleet converged, nothing changing**", "", lambda r: f"{q(r).get('n', big):,} AIServices, {q(r).get('window_s', 0):.0f} s = {q(r).get('window_s', 0) / (q(r).get('resync_s') or 1):.1f} resyncs of {q(r).get('resync_s', 0):g} s" if q(r) else "—"))
    rows.append(("**writes by the operator** (create/update/patch/delete, audit)", "0",
                 lambda r: mark(q(r).get("operator_writes") == 0, f"{q(r).get('operator_writes', 0):,} ({fmt_counts(q(r).get('operator_writes_by_target', {}), 4)}) on {q(r).get('objects_written', 0):,} objects") if q(r) else "—"))
    rows.append(("… of which on AIServices whose status did not change at all (no-op writes)", "0",
                 lambda r: f"{q(r)['writes_on_unchanged_objects']:,} (status changed on {q(r)['objects_status_changed']:,}: {fmt_counts(q(r)['status_fields_changed'], 3)})" if "writes_on_unchanged_objects" in q(r) else "—"))
    rows.append(("Events created by the operator", "0", lambda r: mark(q(r).get("events_by_operator") == 0, _s(q(r).get("events_by_operator"), "")) if q(r) else "—"))
    rows.append(("operator CPU seconds per minute while quiet (per 1,000 AIServices when more)", "< 1 s/min per 1,000",
                 lambda r: mark(_per_thousand(q(r)) < 1 if q(r).get("operator_cpu_s_per_min") is not None else None,
                                _s(q(r).get("operator_cpu_s_per_min"), "s/min", 1)
                                + (f" ({_per_thousand(q(r)):.2f} per 1,000)" if q(r).get("n", 1000) > 1000 else ""))))
    rows.append(("… API server / etcd while quiet: CPU seconds per minute, peak RSS", "",
                 lambda r: _usage_cell(q(r))))
    rows.append(("Prometheus queries/min while quiet (no series: every poll is `empty`)", "", lambda r: _s(q(r).get("prometheus_queries_per_min"), "", 0)))
    a = lambda r: ph(r, "autoscale")  # noqa: E731
    rows.append((f"**Autoscaler, {big:,} AIServices on the operator engine**", "", lambda r: f"poll {a(r).get('poll_s', '—')} s" if a(r) else "—"))
    rows.append(("AIServices decided in the poll that first saw their series (ScalingActive → True: the first within a poll of the series appearing, all within a poll of the first)", f"{big:,}/{big:,}",
                 lambda r: (mark(a(r).get("decided_within_one_poll") == a(r).get("n"), f"{a(r).get('decided_within_one_poll', 0):,}/{a(r).get('n', 0):,}")
                            + ("" if "decision_spread_s" in a(r) else " (earlier check: each within poll + slack of its series)")) if a(r) else "—"))
    rows.append(("… first decision after the series appeared / all decided within (spread)", "",
                 lambda r: f"{_s(a(r).get('first_decision_after_s'), digits=1)} / {_s(a(r).get('decision_spread_s'), digits=1)}" if "decision_spread_s" in a(r) else "—"))
    rows.append(("decision lag after the series appeared, p50 / p99 / max (includes waiting for the next poll)", "", lambda r: f"{_s(a(r).get('decision_lag_p50_s'), digits=1)} / {_s(a(r).get('decision_lag_p99_s'), digits=1)} / {_s(a(r).get('decision_lag_max_s'), digits=1)}"))
    rows.append(("Prometheus queries/min, steady traffic (its own request counter)", "", lambda r: _s(a(r).get("prometheus_queries_per_min"), "", 0)))
    rows.append(("operator writes/min under steady traffic", "", lambda r: f"{_s(a(r).get('operator_writes_per_min'), '', 0)} ({fmt_counts(a(r).get('operator_writes_by_target', {}), 3)})" if a(r) else "—"))
    rows.append(("… status fields that changed under steady traffic (objects)", "",
                 lambda r: f"{fmt_counts(a(r)['status_fields_changed'], 3)} ({a(r)['objects_status_changed']:,} objects; {a(r)['writes_on_unchanged_objects']:,} writes on unchanged ones)" if "status_fields_changed" in a(r) else "—"))
    rows.append(("operator CPU seconds per minute, steady traffic", "", lambda r: _s(a(r).get("operator_cpu_s_per_min"), "s/min", 1)))

    head = "| | target | " + " | ".join(r["label"] for r in runs) + " |"
    lines = ["# Fleet benchmark: the operator at fleet scale on a real API server", ""]
    for r in runs:
        load = ", ".join(f"{x:.1f}" for x in (r.get("load_before") or []))
        lines.append(f"- **{r['label']}**: {r.get('date')}; {r.get('nproc')} cores, {r.get('mem_gib')} GiB (shared, "
                     f"load average {load} at the start); Kubernetes {r.get('kubernetes')} (controller-manager client QPS "
                     f"{r.get('controller_manager_qps', '?')}); Python {r.get('python')}, "
                     f"kopf {r.get('kopf')}; aifleet {r.get('git')}; run took {r.get('duration_s', 0) / 60:.1f} min; "
                     f"`{r.get('command')}`")
        if r.get("error"):
            lines.append(f"  - **stopped early**: {r['error']}")
    lines += ["", head, "| --- | --- | " + " | ".join("---" for _ in runs) + " |"]
    for name, target, fn in rows:
        cells = []
        for r in runs:
            try:
                cells.append(fn(r))
            except Exception:  # noqa: BLE001 - an older run may lack a figure
                cells.append("—")
        lines.append(f"| {name} | {target} | " + " | ".join(cells) + " |")
    lines += ["", "Method: the operator runs as a separate process (`python -m aifleet.cli run --health-port 0 "
              "--metrics-port 0`) as ServiceAccount `aifleet-bench/operator` bound to **cluster-admin** (this "
              "measures efficiency, not RBAC) with a TokenRequest token; every request count is from the API "
              "server's audit log filtered by that user. The audit policy drops Events, so Events are counted "
              "in the Events API (`source=aifleet`). AIServices: `gpusPerPod: 0`, 10m CPU, `minReplicas: 1`, "
              "operator engine polling the benchmark's real Prometheus. Resync shortened with "
              "`AIFLEET_RESYNC_SECONDS`. A decision 'within one poll' = ScalingActive seen True on a watch at "
              "most `poll + slack` seconds after our own query of the engine's batch expression first returned "
              "that AIService's series. Noisy shared machine: figures, not assertions.", ""]
    for r in runs:
        details = detail_lines(r)
        if details:
            lines += [f"## Details: {r['label']}", "", *details, ""]
    return "\n".join(lines)


def detail_lines(r: dict) -> list[str]:
    out = []
    phases = r.get("phases") or {}
    for name, p in phases.items():
        if name.startswith("converge_"):
            out.append(f"- {name}: busiest users {fmt_counts(p.get('top_users', {}), 8)}; operator writes "
                       f"{fmt_counts(p.get('operator_writes', {}), 8)}")
    q = phases.get("quiet") or {}
    if q:
        out.append(f"- quiet: operator requests {fmt_counts(q.get('operator_requests_by_verb', {}), 8)}; at most "
                   f"{q.get('writes_per_object_max')} writes to one object; status fields that changed: "
                   f"{q.get('status_fields_changed', q.get('status_fields_changed_in_sample')) or 'none'}; "
                   f"Prometheus query log: {q.get('query_log')}")
    for name, p in phases.items():
        usage = p.get("control_plane") if isinstance(p, dict) else None
        if usage:
            out.append(f"- control plane beside the operator, {name} ({p.get('window_s', 0):.0f} s): " + control_plane(
                {"operator": {"cpu_s": p.get("operator_cpu_s", 0.0), "peak_rss_mb": p.get("operator_peak_rss_mb", 0.0)},
                 **usage}, p.get("window_s")))
    a = phases.get("autoscale") or {}
    if a:
        out.append(f"- autoscale: series visible {a.get('series_visible_after_s', 0):.1f} s after the target was added; "
                   f"decided at all {a.get('decided_at_all')}/{a.get('n')}; slack {a.get('slack_s')} s; steady-window "
                   f"query log: {a.get('query_log')}")
    for name, p in phases.items():
        prof = p.get("profile") if isinstance(p, dict) else None
        if prof:
            out.append(f"- py-spy profile, {name} ({prof['samples']:,} samples of running threads, "
                       f"{prof.get('threads_seen', '?')} threads seen):")
            if prof.get("categories"):
                out.append("  - where: " + "; ".join(f"{k} {v}%" for k, v in prof["categories"].items()))
            out.append("  - self: " + "; ".join(f"{k} {pc}%" for k, _, pc in prof["self"][:10]))
            out.append("  - inclusive: " + "; ".join(f"{k} {pc}%" for k, _, pc in prof["inclusive"][:14]))
    return out



def control_plane(usage: dict[str, dict[str, float]], window_s: float | None) -> str:
    """"operator 80.0 CPU-s (24.7/min), peak RSS 271 MiB; kube-apiserver ...": each process's CPU over the window
    and its peak memory."""
    def one(name: str, u: dict[str, float]) -> str:
        rate = f" ({u['cpu_s'] / window_s * 60:.1f}/min)" if window_s else ""
        return f"{name} {u['cpu_s']:.1f} CPU-s{rate}, peak RSS {u['peak_rss_mb']:,.0f} MiB"
    return "; ".join(one(name, u) for name, u in usage.items())


def _usage_cell(phase: dict, per_min: bool = True) -> str:
    """"1.2 s/min, 900 MiB / 0.4 s/min, 120 MiB" for the API server and etcd over one phase's window."""
    usage, window = phase.get("control_plane") or {}, phase.get("window_s") or 0
    parts = []
    for name in ("kube-apiserver", "etcd"):
        u = usage.get(name)
        if u is None or not window:
            return "—"
        cpu = f"{u['cpu_s'] / window * 60:.1f} s/min" if per_min else f"{u['cpu_s']:.1f} s"
        parts.append(f"{cpu}, {u['peak_rss_mb']:,.0f} MiB")
    return " / ".join(parts)


def _per_thousand(quiet: dict) -> float:
    """The quiet operator's CPU seconds per minute for each 1,000 AIServices of the fleet."""
    return quiet.get("operator_cpu_s_per_min", 0.0) / max(quiet.get("n", 1000), 1) * 1000
