"""Error handling: every failure is a ``triostream.APIError``; the subclass says which one."""

import trio

import triostream


async def ask(client: triostream.AsyncAnthropic, model: str) -> None:
    try:
        async with client.messages.stream(
            model=model,
            max_tokens=256,
            messages=[{"role": "user", "content": "Hello!"}],
        ) as stream:
            print(f"{model}: {await stream.get_final_text()}")
    except triostream.APIStatusError as exc:  # an error status, or `event: error` mid-stream
        print(f"{model}: API error {exc.status_code} ({exc.type}): {exc.message}")
        print(f"  request-id: {exc.request_id}")
    except triostream.APIConnectionError as exc:  # no connection, a cut-off body, a timeout
        print(f"{model}: connection problem: {exc.message}")
    except triostream.APIError as exc:  # anything else about the API (e.g. bad data)
        print(f"{model}: {type(exc).__name__}: {exc.message}")


async def main() -> None:
    async with triostream.AsyncAnthropic() as client:
        await ask(client, "no-such-model")  # the API answers 404 not_found_error
        await ask(client, "claude-sonnet-4-5")


if __name__ == "__main__":
    trio.run(main)
