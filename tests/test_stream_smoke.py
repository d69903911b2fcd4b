from __future__ import annotations

from typing import Any

import triostream
from tests.conftest import PARAMS, RECORDED
from triostream.testing import Reply


async def test_a_recorded_stream_end_to_end(server: Any, client: Any, nursery: Any) -> None:
    server.enqueue(Reply.sse((RECORDED / "basic_response.txt").read_bytes()))
    async with triostream.open_message_stream(nursery, client=client, **PARAMS) as stream:
        texts = [t async for t in stream.text_stream]
        assert texts == ["Hello", " there", "!"]
        assert await stream.get_final_text() == "Hello there!"
