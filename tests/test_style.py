"""The code is formatted by `ruff format` and passes `ruff check` (pyproject.toml's rule set,
which includes the 100-column line length, E501)."""

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
CODE = ["t2i_keras", "tests", "scripts", "benchmarks"]


def ruff(*args):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *CODE], capture_output=True, text=True, cwd=REPO
    )


def test_ruff_check_passes_with_the_line_length_rule():
    result = ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_code_is_ruff_formatted():
    result = ruff("format", "--check")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
