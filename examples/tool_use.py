"""Tool use: the tool's name at ``content_block_start``, its input as ``input_json_delta``
pieces while it streams, then the parsed input from the final message."""

import json

import trio

import triostream

WEATHER_TOOL: triostream.ToolParam = {
    "name": "get_weather",
    "description": "The current weather in a given location.",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city, e.g. San Francisco"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}


async def main() -> None:
    async with (
        triostream.AsyncAnthropic() as client,
        client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            tools=[WEATHER_TOOL],
            messages=[{"role": "user", "content": "What's the weather like in Paris?"}],
        ) as stream,
    ):
        async for event in stream:
            if event.type == "content_block_start" and event.content_block.type == "tool_use":
                print(f"tool call: {event.content_block.name}")
            elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                print(f"  piece: {event.delta.partial_json!r}")
        message = await stream.get_final_message()
    for block in message.content:
        if block.type == "tool_use":
            print(f"input of {block.name} ({block.id}): {json.dumps(block.input)}")
    print("stop_reason:", message.stop_reason)


if __name__ == "__main__":
    trio.run(main)
