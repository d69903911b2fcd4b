"""One stream, three consumers: a printer, a logger and a metrics counter, all at once.

Each consumer sees every event, in order; a slow one slows the stream rather than
losing events. The stream's own tasks run in the nursery given to
``open_message_stream``.
"""

import logging
from dataclasses import dataclass

import trio

import triostream

log = logging.getLogger("fan_out")


@dataclass
class Metrics:
    events: int = 0
    text_deltas: int = 0
    characters: int = 0
    output_tokens: int = 0
    first_text_after: float | None = None


async def printer(stream: triostream.AsyncMessageStream) -> None:
    async for text in stream.text_stream:
        print(text, end="", flush=True)
    print()


async def logger(events: triostream.Subscription) -> None:
    async with events:
        async for event in events:
            if event.type not in ("text", "content_block_delta"):
                log.info("event %s", event.type)


async def count(stream: triostream.AsyncMessageStream, metrics: Metrics) -> None:
    started = trio.current_time()
    async for event in stream:
        metrics.events += 1
        if event.type == "text":
            if metrics.first_text_after is None:
                metrics.first_text_after = trio.current_time() - started
            metrics.text_deltas += 1
            metrics.characters += len(event.text)
        elif event.type == "message_delta":
            metrics.output_tokens = event.usage.output_tokens


async def main() -> None:
    logging.basicConfig(format="[log] %(message)s")
    log.setLevel(logging.INFO)
    metrics = Metrics()
    async with (
        triostream.AsyncAnthropic() as client,
        trio.open_nursery() as nursery,  # the stream's own tasks run here
        triostream.open_message_stream(
            nursery,
            client=client,
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Describe a lighthouse at night."}],
        ) as stream,
        trio.open_nursery() as consumers,  # ends when all three consumers are done
    ):
        consumers.start_soon(printer, stream)
        consumers.start_soon(logger, stream.subscribe(max_buffer_size=16))
        consumers.start_soon(count, stream, metrics)
    print(
        f"metrics: {metrics.events} events, {metrics.text_deltas} text deltas, "
        f"{metrics.characters} characters, {metrics.output_tokens} output tokens"
    )


if __name__ == "__main__":
    trio.run(main)
