"""Several streams at once, gathered in a nursery: each task stores its answer, in order."""

import trio

import triostream

CITIES = ["Lisbon", "Oslo", "Kyoto"]


async def main() -> None:
    answers: dict[str, str] = {}

    async with triostream.AsyncAnthropic() as client:

        async def ask(city: str) -> None:
            async with client.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=256,
                messages=[{"role": "user", "content": f"One sentence about {city}, please."}],
            ) as stream:
                answers[city] = await stream.get_final_text()

        async with trio.open_nursery() as nursery:
            for city in CITIES:
                nursery.start_soon(ask, city)

    for city in CITIES:  # the nursery has waited for every stream
        print(f"{city}: {answers[city]}")


if __name__ == "__main__":
    trio.run(main)
