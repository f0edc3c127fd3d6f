"""The local control plane the benchmark runs on (e2e/cluster), or one that --kubeconfig names."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from .common import DEFAULTS, ROOT, run, say


class Cluster:
    def __init__(self, args: argparse.Namespace, pods_needed: int) -> None:
        self.args = args
        self.started = False
        self.env = dict(os.environ)
        if args.kubeconfig:
            self.kubeconfig = Path(args.kubeconfig).resolve()
            self.audit_path = Path(args.audit_log) if args.audit_log else self.kubeconfig.parent / "audit.log"
            return
        for k, v in DEFAULTS.items():
            self.env.setdefault(k, v)
        if args.cluster_dir:
            self.env["AIFLEET_CLUSTER_DIR"] = args.cluster_dir
        # Pods of `gpusPerPod: 0` AIServices land on the untainted CPU nodes (110 pods each).
        self.env.setdefault("AIFLEET_CPU_NODES", str(max(2, math.ceil(pods_needed * 1.15 / 110) + 1)))
        self.env.setdefault("AIFLEET_NODES", "1")
        self.env.setdefault("AIFLEET_KWOK_LOG_LEVEL", "WARN")
        self.dir = Path(self.env["AIFLEET_CLUSTER_DIR"])
        self.kubeconfig = self.dir / "kubeconfig"
        self.audit_path = self.dir / "audit.log"

    def up(self) -> None:
        if self.args.kubeconfig:
            return
        script = ROOT / "e2e" / "cluster"
        pids = self.dir / "pids"
        running = pids.exists() and any(p.read_text().strip() and Path(f"/proc/{p.read_text().strip()}").exists()
                                        for p in pids.glob("*.pid"))
        if not running and self.dir.exists():  # a stale state dir from an earlier run: start clean
            run(["bash", str(script / "down.sh"), "--purge"], env=self.env, timeout=120, check=False)
        say(f"cluster: up.sh in {self.dir} ({self.env['AIFLEET_CPU_NODES']} CPU nodes, "
            f"API server port {self.env['AIFLEET_APISERVER_PORT']})")
        proc = run(["bash", str(script / "up.sh")], env=self.env, timeout=600)
        self.started = "already up" not in proc.stderr

    def control_plane(self) -> dict[str, int]:
        """name -> pid of the control plane's own processes (the API server, etcd, ...), when this benchmark started
        them: their CPU and memory are stated beside the operator's."""
        if self.args.kubeconfig:
            return {}
        pids: dict[str, int] = {}
        for pid_file in sorted((self.dir / "pids").glob("*.pid")):
            try:
                pids[pid_file.stem] = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
        return pids

    def kcm_qps(self) -> str:
        """The controller manager's client QPS: it bounds how fast 1,000 Deployments can roll out at all."""
        pid_file = self.kubeconfig.parent / "pids" / "kube-controller-manager.pid"
        try:
            args = Path(f"/proc/{pid_file.read_text().strip()}/cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            return "?"
        qps = next((a.split("=", 1)[1] for a in args if a.startswith("--kube-api-qps=")), "20 (default)")
        return qps

    def down(self) -> None:
        if self.started and not self.args.keep_cluster:
            say("cluster: down.sh --purge")
            run(["bash", str(ROOT / "e2e" / "cluster" / "down.sh"), "--purge"], env=self.env, timeout=180,
                check=False)

