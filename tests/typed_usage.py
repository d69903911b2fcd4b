"""Public API used the way users write it; checked by mypy --strict (not run by pytest)."""

from __future__ import annotations

import trio

import triostream
from triostream.sse import SSEDecoder
from triostream.types import (
    InputJsonEvent,
    Message,
    MessageParam,
    TextBlock,
    TextEvent,
    ToolUseBlock,
    decode_raw_event,
)


async def stream_text(client: triostream.AsyncAnthropic) -> str:
    messages: list[MessageParam] = [{"role": "user", "content": "Hello"}]
    async with (
        trio.open_nursery() as nursery,
        triostream.open_message_stream(
            nursery, client=client, model="claude-sonnet-4-5", max_tokens=64, messages=messages
        ) as stream,
    ):
        pieces: list[str] = []
        async for text in stream.text_stream:
            pieces.append(text)
        async for event in stream:
            if isinstance(event, TextEvent):
                pieces.append(event.snapshot)
            elif isinstance(event, InputJsonEvent):
                print(event.partial_json, event.snapshot)
            elif event.type == "message_stop":
                print(event.type)
        channel = stream.subscribe(max_buffer_size=8)
        async with channel:
            async for event in channel:
                print(event.type)
        message: Message = await stream.get_final_message()
        snapshot = stream.current_message_snapshot
        if snapshot is not None:
            print(snapshot.usage.output_tokens)
        print(stream.request_id, stream.response.status_code)
        return "".join(pieces) + message.id


async def create(client: triostream.AsyncAnthropic) -> list[str]:
    message = await client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "Hi"}],
        temperature=0.2,
        extra_headers={"anthropic-beta": "x"},
    )
    names = [block.name for block in message.content if isinstance(block, ToolUseBlock)]
    texts = [block.text for block in message.content if isinstance(block, TextBlock)]
    raw = await client.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[], stream=True
    )
    async with raw:
        async for event in raw:
            print(event.type)
    async with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "assistant", "content": message.content}],
    ) as stream:
        await stream.until_done()
        texts.append(await stream.get_final_text())
    return names + texts


def sans_io(body: bytes) -> Message | None:
    decoder = SSEDecoder()
    accumulator = triostream.MessageAccumulator()
    for sse in [*decoder.feed(body), *decoder.close()]:
        for event in accumulator.feed(decode_raw_event(sse.data)):
            print(event.type)
    return accumulator.snapshot


async def errors(client: triostream.AsyncAnthropic) -> None:
    try:
        await client.messages.create(model="m", max_tokens=1, messages=[])
    except triostream.OverloadedError as exc:
        print(exc.status_code, exc.type, exc.request_id, exc.message)
    except triostream.APIStatusError as exc:
        print(exc.response)
    except triostream.APIConnectionError as exc:
        print(exc.message)
