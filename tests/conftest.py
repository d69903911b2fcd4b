"""Shared test helpers: where the recorded fixtures are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

RECORDED = Path(__file__).parent / "fixtures" / "recorded"
RECORDED_FILES = sorted(RECORDED.glob("*.txt"))


@pytest.fixture(params=RECORDED_FILES, ids=[p.stem for p in RECORDED_FILES])
def recorded_body(request: pytest.FixtureRequest) -> bytes:
    """Each recorded SSE body, as bytes."""
    path: Path = request.param
    return path.read_bytes()


# --- the trio layer: a loopback server and a client pointed at it ------------------------

API_KEY = "sk-ant-test-SECRET-7f3a9c"  # a recognisable fake; tests check it never leaks


@pytest.fixture
async def server(nursery: Any) -> Any:
    """A MockServer on 127.0.0.1, stopped with the test's nursery."""
    from triostream.testing import MockServer

    return await MockServer.start(nursery)


@pytest.fixture
async def client(server: Any) -> AsyncIterator[Any]:
    """An AsyncAnthropic pointed at the server (closed after the test)."""
    from triostream import AsyncAnthropic

    async with AsyncAnthropic(api_key=API_KEY, base_url=server.base_url) as c:
        yield c


PARAMS: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Hello"}],
}
