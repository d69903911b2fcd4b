"""The official SDK as an oracle: what its own SSE decoder and accumulator make of the bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def sdk_final_message(chunks: Iterable[bytes]) -> dict[str, Any]:
    """Run the official SDK's SSE decoder + ``accumulate_event`` over the chunks."""
    from anthropic._streaming import SSEDecoder
    from anthropic.lib.streaming._messages import accumulate_event

    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for sse in SSEDecoder().iter_bytes(iter(chunks)):
        if sse.event == "ping":
            continue
        snapshot = accumulate_event(
            event=json.loads(sse.data), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None
    result: dict[str, Any] = snapshot.to_dict(mode="json", exclude_unset=True)
    return result
