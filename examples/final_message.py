"""Wait for the final message, then read its content and ``usage.output_tokens``."""

import trio

import triostream


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "What is structured concurrency?"}],
        ) as stream,
    ):
        message = await stream.get_final_message()
    print("text:", "".join(block.text for block in message.content if block.type == "text"))
    print("stop_reason:", message.stop_reason)
    print("input_tokens:", message.usage.input_tokens)
    print("output_tokens:", message.usage.output_tokens)


if __name__ == "__main__":
    trio.run(main)
