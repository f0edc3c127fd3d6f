"""The operator as a separate process: its CPU and memory from /proc, and py-spy profiles of it."""

from __future__ import annotations

import collections
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .common import ROOT


def proc_stat(pid: int) -> dict[str, float]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "cpu_s": (int(fields[11]) + int(fields[12])) / tick,  # utime + stime (all threads)
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
        "hwm_mb": int(status["VmHWM"].split()[0]) / 1024,
        "threads": int(status["Threads"]),
    }


class ProcSampler:
    """Samples the operator's RSS and thread count, and the RSS of the control plane's processes (`others`, name ->
    pid), twice a second, for per-phase peaks."""

    def __init__(self, pid: int, others: dict[str, int] | None = None) -> None:
        self.pid = pid
        self.others = dict(others or {})
        self.peak_rss = 0.0
        self.peak_threads = 0
        self.peak_others: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="proc sampler")
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            s = proc_stat(self.pid)
            if s:
                self.peak_rss = max(self.peak_rss, s["rss_mb"])
                self.peak_threads = max(self.peak_threads, int(s["threads"]))
            for name, pid in self.others.items():
                rss = proc_stat(pid).get("rss_mb", 0.0)
                self.peak_others[name] = max(self.peak_others.get(name, 0.0), rss)

    def reset(self) -> None:
        s = proc_stat(self.pid)
        self.peak_rss, self.peak_threads = s.get("rss_mb", 0.0), int(s.get("threads", 0))
        self.peak_others = {name: proc_stat(pid).get("rss_mb", 0.0) for name, pid in self.others.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the control plane's processes."""
        return {name: proc_stat(pid).get("cpu_s", 0.0) for name, pid in self.others.items()}

    def others_since(self, cpu_before: dict[str, float]) -> dict[str, dict[str, float]]:
        """name -> CPU seconds since `cpu_before` (from `cpu`) and peak RSS since the last `reset`."""
        now = self.cpu()
        return {name: {"cpu_s": now[name] - cpu_before.get(name, 0.0), "peak_rss_mb": self.peak_others.get(name, 0.0)}
                for name in self.others}


def image_env(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """The environment the operator image sets (its final stage's ENV lines): the benchmark runs the operator as the
    image would."""
    stage = dockerfile.read_text().split("\nFROM ")[-1]
    text = stage.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


class Operator:
    def __init__(self, kubeconfig: Path, log_path: Path, resync: float, src: str | None = None) -> None:
        self.log_path = log_path
        env = {**os.environ, **image_env(), "KUBECONFIG": str(kubeconfig), "AIFLEET_RESYNC_SECONDS": f"{resync:g}"}
        if src:  # another checkout's operator (e.g. a git worktree of an older commit), ahead of the installed one
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(src).resolve() / "operator"),
                                                               env.get("PYTHONPATH")]))
        self.cmd = [sys.executable, "-m", "aifleet.cli", "run", "--health-port", "0", "--metrics-port", "0"]
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                     start_new_session=True)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()




class Profiler:
    """py-spy record on the operator (collapsed stacks, only threads that are running)."""

    def __init__(self, pid: int, out: Path, rate: int = 20) -> None:
        self.out = out
        exe = Path(sys.executable).with_name("py-spy")
        self.proc = subprocess.Popen(
            [str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--output", str(out),
             "--nonblocking", "--threads"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def stop(self) -> dict | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return summarize_profile(self.out) if self.out.exists() else None


def _frame(frame: str) -> str:
    # "fn (path/to/file.py:123)" -> "fn (file.py)"
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    short = "/".join(Path(path).parts[-2:]) if "aifleet" in path or "kopf" in path else Path(path).name
    return f"{m.group(1)} ({short})"


def summarize_profile(path: Path, top: int = 15) -> dict:
    self_c: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count  # --threads: the first frame names the thread
        fr = [_frame(f) for f in frames[1:]] or ["?"]
        self_c[fr[-1]] += count
        for f in set(fr):
            incl[f] += count
    share = lambda c: [(k, v, round(100 * v / total, 1)) for k, v in c.most_common(top)]  # noqa: E731
    busy = sorted(threads.values(), reverse=True)
    return {"samples": total, "self": share(self_c), "inclusive": share(incl), "threads_seen": len(threads),
            "busiest_threads_pct": [round(100 * v / total, 1) for v in busy[:8]], "categories": categorize(path, total)}


CATEGORIES = [  # (label, frame-name prefix anywhere in the stack); a sample may count in several
    ("YAML parsing of rendered templates (yaml.safe_load)", ("safe_load ",)),
    ("jinja2 get_template (stat of the template file per call: auto_reload)", ("Environment.get_template ",)),
    ("config_hash (json.dumps + sha256 per child)", ("config_hash ",)),
    ("status PATCH round trip (Kube.patch_status)", ("Kube.patch_status ",)),
    ("child apply/create (Kube.apply, Kube.create)", ("Kube.apply ", "Kube.create ")),
    ("copy.deepcopy", ("deepcopy ",)),
    ("logging", ("Logger._log ",)),
]


def categorize(path: Path, total: int) -> dict[str, float]:
    counts: collections.Counter = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        for label, prefixes in CATEGORIES:
            if any(f.startswith(prefixes) for f in frames):
                counts[label] += int(n)
        if frames[-1].startswith("EpollSelector.select "):
            counts["event loop idle (EpollSelector.select)"] += int(n)
        elif any(f.startswith("BaseEventLoop.run_forever ") for f in frames):
            counts["event loop busy: kopf watches, indexes, handlers, posting"] += int(n)
    return {k: round(100 * v / max(1, total), 1) for k, v in counts.most_common()}

