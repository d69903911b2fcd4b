"""The raw HTTP response behind a stream: status, headers, and the ``request-id``."""

from typing import Any

import trio

import triostream


async def main() -> None:
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Hi!"}],
    }
    async with triostream.AsyncAnthropic() as client:
        async with client.messages.stream(**params) as stream:
            print("status:", stream.response.status_code)
            print("content-type:", stream.response.headers["content-type"])
            print("request-id:", stream.request_id)
            await stream.until_done()

        # The same from a raw event stream (messages.create(stream=True)).
        raw = await client.messages.create(**params, stream=True)
        async with raw:
            print("raw request-id:", raw.response.headers.get("request-id"))
            print("raw events:", [event.type async for event in raw])


if __name__ == "__main__":
    trio.run(main)
