"""The message so far, while it streams: ``stream.current_message_snapshot``.

The snapshot is everything that has arrived, so it can be ahead of the event at
hand when several events came in one network read.
"""

import trio

import triostream


async def main() -> None:
    shown = 0
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": "Count from one to five in words."}],
        ) as stream,
    ):
        async for event in stream:
            if event.type != "text":
                continue
            snapshot = stream.current_message_snapshot
            assert snapshot is not None  # set from message_start on
            text = "".join(block.text for block in snapshot.content if block.type == "text")
            if len(text) > shown:
                shown = len(text)
                print(f"{shown:4d} chars so far, ending {text[-24:]!r}")
    final = stream.current_message_snapshot
    assert final is not None
    print(f"final: {len(final.content)} block(s), stop_reason {final.stop_reason}")


if __name__ == "__main__":
    trio.run(main)
