"""The sans-IO core imports neither trio nor httpx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize(
    "module",
    ["triostream.sse", "triostream.types", "triostream._accumulator", "triostream._partial_json"],
)
def test_sans_io_modules_do_not_import_trio_or_httpx(module: str) -> None:
    code = (
        f"import sys; import {module}; "
        "bad = sorted(m for m in ('trio', 'httpx', 'httpcore', 'anyio') if m in sys.modules); "
        "print(','.join(bad))"
    )
    env = {"PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == ""


def test_the_accumulator_is_public_without_trio() -> None:
    code = "import sys; from triostream import MessageAccumulator; print('trio' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    assert result.stdout.strip() == "False"
