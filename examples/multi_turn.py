"""A multi-turn conversation: append each answer's ``content`` and stream the next turn."""

import trio

import triostream

QUESTIONS = [
    "Recommend a book about the sea.",
    "Who wrote it?",
    "Suggest a similar one.",
]


async def main() -> None:
    messages: list[triostream.MessageParam] = []
    async with triostream.AsyncAnthropic() as client:
        for question in QUESTIONS:
            print(f"> {question}")
            messages.append({"role": "user", "content": question})
            async with client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=512, messages=messages
            ) as stream:
                async for text in stream.text_stream:
                    print(text, end="", flush=True)
                message = await stream.get_final_message()
            print()
            messages.append({"role": "assistant", "content": message.content})
    print(f"{len(messages)} messages in the conversation")


if __name__ == "__main__":
    trio.run(main)
