"""The fleet benchmark behind benchmarks/fleet.py (what it measures and how: see cli.py).

common (constants, logging, waits) -> kube (REST client, watch trackers, the AIServices), audit (the audit
log), process (the operator process, /proc, py-spy), cluster, metrics (Prometheus, a fake Triton) -> phases
-> bench (one run) -> report (the markdown table) -> cli.
"""
