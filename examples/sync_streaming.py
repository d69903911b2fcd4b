"""Synchronous streaming with ``triostream.Anthropic``: no trio, no ``await``, same stream API."""

import triostream


def main() -> None:
    with (
        triostream.Anthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Say hello from a plain script."}],
        ) as stream,
    ):
        for text in stream.text_stream:
            print(text, end="", flush=True)
        print()
        message = stream.get_final_message()
    print("stop_reason:", message.stop_reason)
    print("output_tokens:", message.usage.output_tokens)


if __name__ == "__main__":
    main()
