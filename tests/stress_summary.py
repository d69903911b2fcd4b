"""pytest plugin for ``nox -s stress``: print what the sweeps did.

Registered with ``-p tests.stress_summary``.  At the end of the run it prints the
tally the sweeps kept in :data:`tests.faults.TALLY`: runs, faults injected and
outcomes by class per sweep, then the measurements (memory per stream, soak).
"""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the stress summary section (nothing when no sweep ran)."""
    faults = sys.modules.get("tests.faults")
    lines: list[str] = faults.TALLY.lines() if faults is not None else []
    if not lines:
        return
    terminalreporter.section("stress summary")
    for line in lines:
        terminalreporter.write_line(line)
