"""Without ``async with``: call ``__aenter__`` / ``__aexit__`` yourself (always in ``finally``)."""

import trio

import triostream


async def main() -> None:
    client = triostream.AsyncAnthropic()
    try:
        manager = client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Give me a one-line motto."}],
        )
        stream = await manager.__aenter__()
        try:
            async for text in stream.text_stream:
                print(text, end="", flush=True)
            print()
        finally:
            await manager.__aexit__(None, None, None)  # closes the response and the stream's tasks
    finally:
        await client.aclose()


if __name__ == "__main__":
    trio.run(main)
