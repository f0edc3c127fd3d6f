"""What ships: one version everywhere, the chart's CRDs, and a wheel that installs a working `aifleet` command."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml

import aifleet
from conftest import ROOT

CHART = ROOT / "charts" / "aifleet-operator"


def _aifleet(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "aifleet.cli", *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_chart_package_and_cli_versions_agree():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    cli = _aifleet("--version")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"aifleet {aifleet.__version__}"
    assert str(chart["version"]) == aifleet.__version__, "Chart.yaml version != operator/aifleet/__init__.py"
    assert str(chart["appVersion"]) == aifleet.__version__, "Chart.yaml appVersion != operator/aifleet/__init__.py"


def test_chart_crd_is_the_generated_crd_byte_for_byte():
    out = _aifleet("crd")
    assert out.returncode == 0, out.stderr
    path = CHART / "crds" / "aifleet.dev_aiservices.yaml"
    assert path.read_text() == out.stdout, f"{path.relative_to(ROOT)} is stale: run `make crd`"


def test_chart_ships_kopf_peering_crds():
    docs = list(yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()))
    by_kind = {d["spec"]["names"]["kind"]: d for d in docs}
    assert set(by_kind) == {"ClusterKopfPeering", "KopfPeering"}
    assert by_kind["ClusterKopfPeering"]["spec"]["scope"] == "Cluster"
    assert by_kind["KopfPeering"]["spec"]["scope"] == "Namespaced"
    for doc in docs:
        assert doc["spec"]["group"] == "kopf.dev"  # what kopf 1.x looks for first
        (version,) = doc["spec"]["versions"]
        assert version["name"] == "v1" and version["served"] and version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status.get("x-kubernetes-preserve-unknown-fields") is True  # kopf writes free-form keep-alives


def test_wheel_installs_a_working_aifleet_command(tmp_path):
    """Build the wheel, install it with --no-deps into a fresh venv, run the installed command.

    The fresh venv borrows the dependencies (not aifleet) from the running environment through a .pth line, so
    the test takes seconds instead of a full dependency install; it asserts that `aifleet` itself is imported
    from the installed wheel, not from the source tree.
    """
    started = time.monotonic()
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("aifleet-*.whl")
    assert wheel.name.startswith(f"aifleet-{aifleet.__version__}-")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )
    assert install.returncode == 0, install.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Plain path lines: .pth files inside the borrowed directory (the editable install of aifleet) are not run.
    (site / "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    command = venv / "bin" / "aifleet"
    assert command.exists(), "the wheel did not install the `aifleet` console script"
    where = subprocess.run([str(python), "-c", "import aifleet; print(aifleet.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(str(site)), f"aifleet imported from {where}, not from the installed wheel"

    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"aifleet {aifleet.__version__}"

    # Templates are package data: rendering needs them.
    rendered = subprocess.run([str(command), "render", str(ROOT / "examples" / "minimal.yaml")],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d}
    assert {"Deployment", "Service"} <= kinds

    crd = subprocess.run([str(command), "crd"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert crd.returncode == 0 and "aiservices.aifleet.dev" in crd.stdout
    assert time.monotonic() - started < 90, "packaging test too slow for the unit suite"


@pytest.mark.parametrize("path", ["Dockerfile"])
def test_dockerfile_runs_the_wheel_as_non_root(path):
    text = (ROOT / path).read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER 65532" in text
    assert 'ENTRYPOINT ["aifleet", "run"]' in text
    assert text.index("USER 65532") < text.index("ENTRYPOINT")
