"""The `aifleet` command as a person types it: help everywhere, options in any order, bad values refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aifleet.cli import build_parser, main
from conftest import ROOT

SUBCOMMANDS = ("run", "render", "crd", "simulate")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("argv", [["-h"], *([command, "-h"] for command in SUBCOMMANDS)])
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "usage: aifleet" in capsys.readouterr().out


def test_simulate_help_lists_its_options(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert "--policy" in out and "--pod-startup-seconds" in out and "trace" in out


def test_simulate_takes_options_before_the_trace(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("time_seconds,rps\n0,10\n600,80\n1200,10\n")
    assert main(["simulate", "--policy", "hpa", "--max-replicas", "50", str(trace)]) == 0
    assert "hpa" in capsys.readouterr().out


def test_a_bad_log_level_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--log-level", "LOUD"])
    assert exit_.value.code == 2
    assert "--log-level" in capsys.readouterr().err


def test_log_level_is_case_insensitive():
    assert build_parser().parse_args(["run", "--log-level", "debug"]).log_level == "DEBUG"


def test_crd_and_render_do_not_import_the_simulator():
    out = _python(
        "import sys; from aifleet.cli import main; main(['crd']); "
        "assert not {'numpy', 'matplotlib', 'aifleet.autoscaler.simulate'} & set(sys.modules), 'simulator imported'"
    )
    assert out.returncode == 0, out.stderr


def test_simulate_without_the_sim_extra_names_it():
    # None in sys.modules makes `import numpy` fail as it does where numpy is not installed.
    out = _python("import sys; sys.modules['numpy'] = None; from aifleet.cli import main; sys.exit(main(['simulate', 'x.csv']))")
    assert out.returncode == 2
    assert "pip install 'aifleet[sim]'" in out.stderr


# Ten aliases of the level below on each of nine levels: a billion values once expanded, from a few lines.
_ALIAS_BOMB = b"l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n".encode() for i in range(1, 10)
)


@pytest.mark.parametrize(
    "content",
    [b"- a\n", b"chat\n", _ALIAS_BOMB, b"name: caf\xe9\n", b"apiVersion: aifleet.dev/v1alpha1\nkind: aiservice\nmetadata: {name: chat}\n",
     b"apiVersion: aifleet.dev/v1alpha1\nkind: AIService\nmetadata: chat\n", b"a: 1\na: 2\n", b""],
    ids=["list", "scalar", "alias-bomb", "latin-1", "kind-case", "metadata-scalar", "duplicate-key", "empty"],
)
def test_render_refuses_a_bad_file_with_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    out = subprocess.run(
        [sys.executable, "-m", "aifleet.cli", "render", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 1, out
    assert out.stdout == ""
    assert out.stderr.startswith(f"error: {path}") and "Traceback" not in out.stderr, out.stderr
