"""Generate the example traffic traces under examples/traces/ (deterministic: fixed seed, stdlib RNG).

    .venv/bin/python benchmarks/make_traces.py [--azure PATH/azure-llm-inference-2023-code.csv]

Each synthetic trace is a CSV `time_seconds,rps` of at most ~1,500 rows. Target 10 rps per pod throughout,
so 10 rps is one pod. examples/traces/README.md describes every trace.

`--azure` also derives `azure_code.csv` (arrivals per 10 s, as rps) from the Azure LLM inference trace 2023
(a request log, CC-BY 4.0; its attribution is in examples/traces/README.md and must stay beside the file).
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

from aifleet.autoscaler.simulate import load_trace, write_trace

SEED = 20240611
OUT = Path(__file__).resolve().parent.parent / "examples" / "traces"


def _smooth_step(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _bump(t: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((t - centre) / width) ** 2)


def diurnal(rng: random.Random) -> tuple[list[float], list[float]]:
    """A consumer day: trough ~50 rps at 04:00, peak ~800 rps mid-afternoon, second hump at 21:00."""
    times, rps = [], []
    for i in range(24 * 60 + 1):
        t = i * 60.0
        h = t / 3600
        level = 50 + 600 * _bump(h, 14.5, 3.6) + 300 * _bump(h, 21, 1.6) + 120 * _bump(h, 9.5, 1.5)
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.03))))
    return times, rps


def spike(rng: random.Random) -> tuple[list[float], list[float]]:
    """100 rps, then a sudden 10x spike for 20 minutes at t=30 min, then back."""
    times, rps = [], []
    for i in range(2 * 720 + 1):
        t = i * 5.0
        level = 1000.0 if 1800 <= t < 3000 else 100.0
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.02))))
    return times, rps


def ramp(rng: random.Random) -> tuple[list[float], list[float]]:
    """20 minutes at 100 rps, a linear ramp to 1,500 rps over 2 hours, then 40 minutes flat."""
    times, rps = [], []
    for i in range(3 * 360 + 1):
        t = i * 10.0
        level = 100 + 1400 * min(max((t - 1200) / 7200, 0.0), 1.0)
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.02))))
    return times, rps


def noisy_flat(rng: random.Random) -> tuple[list[float], list[float]]:
    """300 rps with 15% noise every 10 seconds: nothing to follow, only noise to ignore."""
    times, rps = [], []
    for i in range(3 * 360 + 1):
        times.append(i * 10.0)
        rps.append(max(0.0, 300 * (1 + rng.gauss(0, 0.15))))
    return times, rps


def field_large(rng: random.Random) -> tuple[list[float], list[float]]:
    """Shaped like the field's large deployment: 200 rps at night, a steep morning ramp to ~4,000 by
    09:00, a lunch peak of ~5,000, an afternoon plateau, two short bursts, the evening decline."""
    times, rps = [], []
    for i in range(24 * 60 + 1):
        t = i * 60.0
        h = t / 3600
        morning = _smooth_step((h - 6.5) / 2.5)  # 06:30 -> 09:00
        evening = _smooth_step((h - 18.0) / 5.0)  # 18:00 -> 23:00
        level = 200 + 3800 * morning * (1 - evening)
        level += 1000 * _bump(h, 12.75, 0.75) * (1 - evening)
        if 10.25 <= h < 10.25 + 5 / 60:
            level *= 1.25  # a 5-minute burst
        if 16.67 <= h < 16.67 + 3 / 60:
            level *= 1.4  # a 3-minute burst
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.03))))
    return times, rps


def _day(h: float) -> float:
    """The diurnal shape in [~0.07, ~1]: night trough at 04:00, afternoon peak, evening hump."""
    return (50 + 600 * _bump(h, 14.5, 3.6) + 300 * _bump(h, 21, 1.6) + 120 * _bump(h, 9.5, 1.5)) / 700


def periodic(rng: random.Random) -> tuple[list[float], list[float]]:
    """6 h of batch jobs: 100 rps of interactive traffic, and every 15 min (on the quarter hour) a batch
    that ramps to +600 rps within 20 s, runs 4 minutes and stops; the batch size varies by +-10%."""
    times, rps = [], []
    sizes = [600 * (1 + rng.uniform(-0.1, 0.1)) for _ in range(6 * 4 + 1)]
    for i in range(6 * 240 + 1):
        t = i * 15.0
        k, into = divmod(t, 900.0)
        batch = sizes[int(k)] * min(into / 20.0, 1.0) if into < 240 else 0.0
        times.append(t)
        rps.append(max(0.0, (100 + batch) * (1 + rng.gauss(0, 0.03))))
    return times, rps


def flash_crowd(rng: random.Random) -> tuple[list[float], list[float]]:
    """A day like `diurnal` (50..700 rps) and a flash crowd at 11:00: +1,200 rps within 2 minutes (a link
    on a front page), decaying with a 40-minute time constant."""
    times, rps = [], []
    for i in range(24 * 60 + 1):
        t = i * 60.0
        h = t / 3600
        level = 700 * _day(h)
        since = t - 11 * 3600
        if since >= 0:
            level += 1200 * min(since / 120.0, 1.0) * math.exp(-max(since - 120, 0) / 2400)
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.03))))
    return times, rps


def outage(rng: random.Random) -> tuple[list[float], list[float]]:
    """6 h of steady growth, 200 -> 800 rps; at 3 h an upstream dependency fails for 10 minutes (clients
    get errors at once, so served traffic drops to 10%), then the clients' retry storm: the backlog
    arrives at 3x the normal rate and decays over ~5 minutes."""
    times, rps = [], []
    start, end = 3 * 3600.0, 3 * 3600.0 + 600
    for i in range(6 * 240 + 1):
        t = i * 15.0
        level = 200 + 600 * t / (6 * 3600)
        if start <= t < end:
            level *= 0.1
        elif t >= end:
            level *= 1 + 2 * math.exp(-(t - end) / 150)
        times.append(t)
        rps.append(max(0.0, level * (1 + rng.gauss(0, 0.03))))
    return times, rps


def weekly(rng: random.Random) -> tuple[list[float], list[float]]:
    """7 days from a Monday at 10-minute resolution: weekdays peak at ~700 rps, Saturday and Sunday at
    ~45% of that and later in the day; every day's level varies by +-8%."""
    times, rps = [], []
    scale = [1 + rng.uniform(-0.08, 0.08) for _ in range(7)]
    for i in range(7 * 144 + 1):
        t = i * 600.0
        day, h = divmod(t / 3600, 24)
        d = min(int(day), 6)
        if d >= 5:
            level = 30 + 290 * _bump(h, 16.0, 4.0)
        else:
            level = 700 * _day(h)
        times.append(t)
        rps.append(max(0.0, level * scale[d] * (1 + rng.gauss(0, 0.03))))
    return times, rps


TRACES = {
    "diurnal": diurnal, "spike": spike, "ramp": ramp, "noisy_flat": noisy_flat, "field_large": field_large,
    "periodic": periodic, "flash_crowd": flash_crowd, "outage": outage, "weekly": weekly,
}
AZURE_BIN_SECONDS = 10.0


def azure_code(source: Path, out: Path) -> None:
    """The Azure request log counted per 10 s (a 1 s count at ~2.5 rps is mostly Poisson noise)."""
    trace = load_trace(source, column="TIMESTAMP", bin_seconds=AZURE_BIN_SECONDS)
    write_trace(out / "azure_code.csv", trace.times, trace.rps)
    print(f"{out / 'azure_code.csv'}: {trace.requests} requests in {len(trace.times)} bins of {AZURE_BIN_SECONDS:g} s")


def main(out: Path = OUT, azure: Path | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if azure is not None:
        azure_code(azure, out)
    for name, make in TRACES.items():
        # One RNG per trace, seeded from the trace's name: adding a trace never changes the others.
        rng = random.Random(f"{SEED}:{name}")
        times, rps = make(rng)
        write_trace(out / f"{name}.csv", times, rps)
        print(f"{out / f'{name}.csv'}: {len(times)} rows, {min(rps):.0f}..{max(rps):.0f} rps")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(azure=Path(args[1]) if args[:1] == ["--azure"] and len(args) > 1 else None)
