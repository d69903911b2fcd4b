"""Only the final text: ``get_final_text()`` waits for the end and joins the text blocks."""

import trio

import triostream


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Write a haiku about rivers."}],
        ) as stream,
    ):
        text = await stream.get_final_text()
    print(text)


if __name__ == "__main__":
    trio.run(main)
