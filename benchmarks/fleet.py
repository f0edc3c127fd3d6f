"""Fleet benchmark: the operator at fleet scale on a REAL API server (see fleetbench/cli.py, or --help).

    .venv/bin/python benchmarks/fleet.py [--services 100,1000] [--label after] [--profile] [--baseline]
                                         [--out benchmarks/results/fleet.md] [--operator-src DIR]
    .venv/bin/python benchmarks/fleet.py --render-only      # rebuild the table from the saved runs
"""

from __future__ import annotations

from fleetbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
