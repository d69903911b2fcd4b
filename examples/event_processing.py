"""Async event processing: a separate task handles every event (slow work included)
from ``stream.subscribe()`` while the main task prints the text."""

from collections import Counter

import trio

import triostream


async def handle(event: triostream.MessageStreamEvent, counts: Counter[str]) -> None:
    """Stand-in for real async work per event: a database write, a websocket send, ..."""
    await trio.sleep(0.001)  # e.g. a network round trip
    counts[event.type] += 1


async def process(events: triostream.Subscription) -> None:
    counts: Counter[str] = Counter()
    async with events:
        async for event in events:
            await handle(event, counts)
    print("events processed:", ", ".join(f"{kind}={n}" for kind, n in sorted(counts.items())))


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Tell me a fun fact about octopuses."}],
        ) as stream,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(process, stream.subscribe())
        async for text in stream.text_stream:
            print(text, end="", flush=True)
        print()


if __name__ == "__main__":
    trio.run(main)
