"""Draw the dashboard's panels (charts/aifleet-operator/files/aifleet-dashboard.json) from a real Prometheus.

    .venv/bin/python scripts/dashboard_picture.py --prometheus http://HOST:9090 --namespace NS --aiservice NAME \
        [--minutes 20] [--out docs/dashboard.png]

Every panel's queries are run as range queries over the last --minutes, with the dashboard's variables set to the
namespace and AIService given, and drawn as Grafana lays them out (the picture is this project's rendering, not
Grafana's). Needs matplotlib (`pip install -e '.[sim]'`).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e"))  # e2e/dashboard.py: the panels' queries, shared with the tests

UNITS = {"reqps": "requests/s", "ops": "per second", "ms": "ms", "short": "pods", "s": "seconds"}


def draw(prometheus: str, namespace: str, aiservice: str, start: float, end: float, out: Path) -> None:
    import dashboard
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    layout = dashboard.panels(namespace, aiservice)
    # Grafana's rows of panels (same gridPos.y), each as tall as its panels.
    tops = sorted({p["gridPos"]["y"] for p, _ in layout})
    heights = [max(p["gridPos"]["h"] for p, _ in layout if p["gridPos"]["y"] == y) for y in tops]
    fig = plt.figure(figsize=(16, 0.5 * sum(heights) + 1))
    grid = fig.add_gridspec(len(tops), 24, height_ratios=heights, hspace=0.5, wspace=2.5,
                            left=0.09, right=0.95, top=0.94, bottom=0.04)
    step = max(1.0, (end - start) / 300)
    fig.suptitle(f"aifleet dashboard: AIService {namespace}/{aiservice}, "
                 f"{datetime.fromtimestamp(start):%Y-%m-%d %H:%M} to {datetime.fromtimestamp(end):%H:%M}",
                 fontsize=13)
    first = None
    for panel, queries in layout:
        g = panel["gridPos"]
        ax = fig.add_subplot(grid[tops.index(g["y"]), g["x"]:g["x"] + g["w"]], sharex=first)
        first = first or ax
        ax.set_title(panel["title"], fontsize=11, loc="left")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        # Series that Grafana draws with a unit of their own (fieldConfig overrides by name) go on a right axis.
        own_units = {o["matcher"]["options"]: next((p["value"] for p in o["properties"] if p["id"] == "unit"), "")
                     for o in panel.get("fieldConfig", {}).get("overrides", []) if o["matcher"]["id"] == "byName"}
        right = None
        timeline = panel["type"] == "state-timeline"
        names: list[str] = []
        for query in queries:
            found = dashboard.series(prometheus, query.expr, start, end, step)
            if not found and not timeline:  # say so in the legend, as Grafana's "No data" would
                ax.plot([], [], label=dashboard.legend(query.legend, {}).strip(" :") + ": no series", color="grey")
            for s in found:
                times = [datetime.fromtimestamp(float(t)) for t, _ in s["values"]]
                values = [float(v) for _, v in s["values"]]
                label = dashboard.legend(query.legend, s["metric"])
                if timeline:  # one row per reason, drawn where it was the decision's reason
                    names.append(label)
                    ax.scatter(times, [len(names) - 1] * len(times), marker="s", s=18, label=label)
                elif label in own_units:
                    right = right or ax.twinx()
                    right.plot(times, values, label=label, color="tab:purple", linestyle="--")
                    right.set_ylabel(UNITS.get(own_units[label], own_units[label]))
                    right.set_ylim(bottom=0)
                else:
                    ax.plot(times, values, label=label, drawstyle="steps-post" if unit == "short" else "default")
        if timeline:
            ax.set_yticks(range(len(names)), names)
            ax.set_ylim(-0.7, max(len(names), 1) - 0.3)
        else:
            ax.set_ylabel(UNITS.get(unit, unit))
            ax.set_ylim(bottom=0)
            handles, labels = ax.get_legend_handles_labels()
            if right is not None:
                more = right.get_legend_handles_labels()
                handles, labels = handles + more[0], labels + more[1]
            if handles:
                ax.legend(handles, labels, fontsize=8, loc="upper left")
        if not ax.has_data() and right is None:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--aiservice", required=True)
    parser.add_argument("--minutes", type=float, default=20, help="how far back from --end (default 20)")
    parser.add_argument("--end", type=float, default=None, help="Unix time of the right edge (default now)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args(argv)
    end = args.end or time.time()
    draw(args.prometheus, args.namespace, args.aiservice, end - args.minutes * 60, end, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
