"""Basic text streaming: print the answer as it arrives, with the stream's tasks in your nursery.

Run: ``python examples/basic_streaming.py`` (uses ANTHROPIC_API_KEY; ANTHROPIC_BASE_URL
points it elsewhere, e.g. at a ``triostream.testing`` server).
"""

import trio

import triostream


async def main() -> None:
    async with triostream.AsyncAnthropic() as client, trio.open_nursery() as nursery:
        async with triostream.open_message_stream(
            nursery,
            client=client,
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
        ) as stream:
            async for text in stream.text_stream:
                print(text, end="", flush=True)
        print()


if __name__ == "__main__":
    trio.run(main)
