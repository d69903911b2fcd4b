"""Shared test helpers: where the recorded fixtures are."""

from __future__ import annotations

from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "fixtures" / "recorded"
RECORDED_FILES = sorted(RECORDED.glob("*.txt"))


@pytest.fixture(params=RECORDED_FILES, ids=[p.stem for p in RECORDED_FILES])
def recorded_body(request: pytest.FixtureRequest) -> bytes:
    """Each recorded SSE body, as bytes."""
    path: Path = request.param
    return path.read_bytes()
