"""Token usage while streaming: input tokens at ``message_start``, output tokens at
``message_delta``."""

import trio

import triostream


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Explain backpressure in two sentences."}],
        ) as stream,
    ):
        async for event in stream:
            if event.type == "message_start":
                usage = event.message.usage
                print(f"message_start: input_tokens={usage.input_tokens}")
                print(f"message_start: output_tokens={usage.output_tokens}")
            elif event.type == "message_delta":
                print(f"message_delta: output_tokens={event.usage.output_tokens}")
        message = await stream.get_final_message()
    print(f"final usage: input_tokens={message.usage.input_tokens}")
    print(f"final usage: output_tokens={message.usage.output_tokens}")


if __name__ == "__main__":
    trio.run(main)
