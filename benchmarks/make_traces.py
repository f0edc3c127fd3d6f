"""Generate the example traffic traces under examples/traces/ (deterministic: fixed seed, stdlib RNG).

    .venv/bin/python benchmarks/make_traces.py

Each trace is a CSV `time_seconds,rps` of at most ~1,500 rows. Target 10 rps per pod throughout,
so 10 rps is one pod.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from aifleet.autoscaler.simulate import write_trace

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


TRACES = {"diurnal": diurnal, "spike": spike, "ramp": ramp, "noisy_flat": noisy_flat, "field_large": field_large}


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, make in TRACES.items():
        # One RNG per trace, seeded from the trace's name: adding a trace never changes the others.
        rng = random.Random(f"{SEED}:{name}")
        times, rps = make(rng)
        write_trace(out / f"{name}.csv", times, rps)
        print(f"{out / f'{name}.csv'}: {len(times)} rows, {min(rps):.0f}..{max(rps):.0f} rps")


if __name__ == "__main__":
    main()
