"""Temperature: 0.0 for the most predictable answer, 1.0 for more varied ones."""

import trio

import triostream


async def main() -> None:
    async with triostream.AsyncAnthropic() as client:
        for temperature in (0.0, 1.0):
            async with client.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=256,
                temperature=temperature,
                messages=[{"role": "user", "content": "Suggest a name for a pet turtle."}],
            ) as stream:
                print(f"temperature {temperature}: {await stream.get_final_text()}")


if __name__ == "__main__":
    trio.run(main)
