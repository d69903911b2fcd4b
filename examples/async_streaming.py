"""Async streaming with ``client.messages.stream(...)``, as in the official SDK's example.

Only the import line and ``trio.run`` differ from the ``anthropic`` SDK's version.
"""

import msgspec
import trio

from triostream import AsyncAnthropic

client = AsyncAnthropic()


async def main() -> None:
    async with client.messages.stream(
        max_tokens=1024,
        messages=[{"role": "user", "content": "Say hello there!"}],
        model="claude-sonnet-4-5",
    ) as stream:
        async for event in stream:
            if event.type == "text":
                print(event.text, end="", flush=True)
            elif event.type == "content_block_stop":
                print()
                print("\ncontent block finished accumulating:", event.content_block)

        print()

    # The accumulated message is still there once the block has ended,
    # as long as the whole stream was consumed inside it.
    accumulated = await stream.get_final_message()
    print("accumulated message:", msgspec.json.encode(accumulated).decode())
    await client.aclose()


if __name__ == "__main__":
    trio.run(main)
