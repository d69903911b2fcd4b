"""Iterate over every event of a stream and switch on ``event.type``."""

import trio

import triostream


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Name three prime numbers."}],
        ) as stream,
    ):
        async for event in stream:
            match event.type:
                case "message_start":
                    print(f"[message_start] id={event.message.id} model={event.message.model}")
                case "content_block_start":
                    print(f"[content_block_start] #{event.index} {event.content_block.type}")
                case "text":
                    print(f"[text] {event.text!r}")
                case "content_block_stop":
                    print(f"[content_block_stop] #{event.index}")
                case "message_delta":
                    print(f"[message_delta] stop_reason={event.delta.stop_reason}")
                case "message_stop":
                    print("[message_stop]")
                case _:
                    pass  # raw deltas (content_block_delta), and types added later


if __name__ == "__main__":
    trio.run(main)
