"""The official OpenAI Python client against the gateway, asserting on the typed objects it returns.

Run by sdk-tests/tests/conformance.rs, which starts the gateway in front of the fake upstream and
sets GATEWAY_URL, GATEWAY_KEY, GATEWAY_TEXT (the fake's answer text) and the model ids:
GATEWAY_RESPONSES_ONLY_MODEL (reached with chat completions), GATEWAY_CHAT_ONLY_MODEL (reached with
the Responses API) and GATEWAY_EMBEDDING_MODEL. The Rust test checks what reached the fake.
"""

import asyncio
import json
import os
import sys
import unittest

import openai
import pydantic
from openai import AsyncOpenAI, AzureOpenAI, OpenAI
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

URL = os.environ["GATEWAY_URL"]
KEY = os.environ["GATEWAY_KEY"]
TEXT = os.environ["GATEWAY_TEXT"]
RESPONSES_ONLY = os.environ["GATEWAY_RESPONSES_ONLY_MODEL"]
CHAT_ONLY = os.environ["GATEWAY_CHAT_ONLY_MODEL"]
EMBEDDING = os.environ["GATEWAY_EMBEDDING_MODEL"]
AZURE_API_VERSION = "2024-10-21"
TIMEOUT = 30

print(f"openai {openai.__version__} (Python {sys.version.split()[0]})", file=sys.stderr)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the weather in Oslo?"},
]
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CHAT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": WEATHER_PARAMETERS,
        },
    }
]
RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": WEATHER_PARAMETERS,
        "strict": False,
    }
]
OSLO = '{"city":"Oslo"}'
# Makes the fake answer with a call of get_weather (the gateway passes unknown members on).
CALL_WEATHER = {"fake": {"tool_calls": [{"name": "get_weather", "arguments": OSLO}]}}
WEATHER = '{"temperature_c": 12}'
# Makes the fake answer with WEATHER as its text, for structured output the client parses.
ANSWER_WEATHER = {"fake": {"text": WEATHER}}
# A 1x1 transparent PNG.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def client(key=KEY):
    return OpenAI(base_url=URL + "/v1", api_key=key, timeout=TIMEOUT, max_retries=0)


class Weather(pydantic.BaseModel):
    temperature_c: float


def fake(**overrides):
    """Makes the fake answer differently (a status, a cut stream, a final event)."""
    return {"fake": overrides}


def azure_client(key=KEY):
    return AzureOpenAI(
        azure_endpoint=URL,
        api_key=key,
        api_version=AZURE_API_VERSION,
        timeout=TIMEOUT,
        max_retries=0,
    )


class ChatChecks(unittest.TestCase):
    """Checks on chat completions answers, shared by the OpenAI and AzureOpenAI clients."""

    def check_completion(self, completion, content=TEXT, finish_reason="stop"):
        self.assertIsInstance(completion, ChatCompletion)
        self.assertEqual(completion.object, "chat.completion")
        self.assertTrue(completion.id)
        self.assertEqual(len(completion.choices), 1)
        choice = completion.choices[0]
        self.assertEqual(choice.index, 0)
        self.assertEqual(choice.message.role, "assistant")
        self.assertEqual(choice.message.content, content)
        self.assertEqual(choice.finish_reason, finish_reason)
        self.assertGreater(completion.usage.prompt_tokens, 0)
        self.assertGreater(completion.usage.completion_tokens, 0)
        self.assertEqual(
            completion.usage.total_tokens,
            completion.usage.prompt_tokens + completion.usage.completion_tokens,
        )

    def check_stream_with_usage(self, stream):
        chunks = list(stream)
        self.assertTrue(all(isinstance(c, ChatCompletionChunk) for c in chunks))
        self.assertTrue(all(c.object == "chat.completion.chunk" for c in chunks))
        self.assertEqual(len({c.id for c in chunks}), 1, "one id for the whole stream")
        with_choices = [c for c in chunks if c.choices]
        self.assertEqual(with_choices[0].choices[0].delta.role, "assistant")
        content = "".join(c.choices[0].delta.content or "" for c in with_choices)
        self.assertEqual(content, TEXT)
        finishes = [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason]
        self.assertEqual(finishes, ["stop"])
        usage_chunk = chunks[-1]
        self.assertEqual(usage_chunk.choices, [])
        self.assertGreater(usage_chunk.usage.prompt_tokens, 0)
        self.assertGreater(usage_chunk.usage.completion_tokens, 0)
        self.assertTrue(all(c.usage is None for c in chunks[:-1]))


class ChatOnResponsesOnlyModel(ChatChecks):
    """`OpenAI().chat.completions` against a deployment that answers only the Responses API."""

    def test_plain(self):
        completion = client().chat.completions.create(model=RESPONSES_ONLY, messages=MESSAGES)
        self.check_completion(completion)
        self.assertIsNone(completion.choices[0].message.tool_calls)

    def test_streaming_with_usage(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        self.check_stream_with_usage(stream)

    def test_streaming_without_usage(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY, messages=MESSAGES, stream=True
        )
        chunks = list(stream)
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in chunks), TEXT)
        self.assertTrue(all(c.usage is None and len(c.choices) == 1 for c in chunks))

    def test_tool_round_trip(self):
        first = client().chat.completions.create(
            model=RESPONSES_ONLY, messages=MESSAGES, tools=CHAT_TOOLS, extra_body=CALL_WEATHER
        )
        self.assertIsInstance(first, ChatCompletion)
        choice = first.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        [call] = choice.message.tool_calls
        self.assertEqual(call.type, "function")
        self.assertTrue(call.id)
        self.assertEqual(call.function.name, "get_weather")
        self.assertEqual(json.loads(call.function.arguments), {"city": "Oslo"})

        # The usual loop: the returned message goes back as it is, then the tool's answer.
        messages = MESSAGES + [
            choice.message,
            {"role": "tool", "tool_call_id": call.id, "content": WEATHER},
        ]
        second = client().chat.completions.create(
            model=RESPONSES_ONLY, messages=messages, tools=CHAT_TOOLS
        )
        self.check_completion(second)

    def test_streamed_tool_call(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            tools=CHAT_TOOLS,
            stream=True,
            extra_body=CALL_WEATHER,
        )
        calls = {}
        finishes = []
        for chunk in stream:
            choice = chunk.choices[0]
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or delta.id
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
        self.assertEqual(finishes, ["tool_calls"])
        self.assertEqual(list(calls), [0])
        self.assertTrue(calls[0]["id"])
        self.assertEqual(calls[0]["name"], "get_weather")
        self.assertEqual(json.loads(calls[0]["arguments"]), {"city": "Oslo"})

    def test_json_schema_output(self):
        completion = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "weather",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"temperature_c": {"type": "number"}},
                        "required": ["temperature_c"],
                        "additionalProperties": False,
                    },
                },
            },
        )
        # The fake does not follow the schema; the Rust test checks it arrived as text.format.
        self.check_completion(completion)

    def test_image_input(self):
        completion = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {"type": "image_url", "image_url": {"url": PIXEL, "detail": "low"}},
                    ],
                }
            ],
        )
        self.check_completion(completion)


    def test_parse_into_a_pydantic_model(self):
        completion = client().chat.completions.parse(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            response_format=Weather,
            extra_body=ANSWER_WEATHER,
        )
        self.assertEqual(completion.choices[0].message.parsed, Weather(temperature_c=12))

    def test_stream_helper_with_a_tool_call(self):
        with client().chat.completions.stream(
            model=RESPONSES_ONLY, messages=MESSAGES, tools=CHAT_TOOLS, extra_body=CALL_WEATHER
        ) as stream:
            kinds = {event.type for event in stream}
            final = stream.get_final_completion()
        self.assertIn("tool_calls.function.arguments.done", kinds)
        [call] = final.choices[0].message.tool_calls
        self.assertEqual(call.function.name, "get_weather")
        self.assertEqual(json.loads(call.function.arguments), {"city": "Oslo"})
        self.assertEqual(final.choices[0].finish_reason, "tool_calls")

    def test_async_client_streams(self):
        async def stream():
            async with AsyncOpenAI(
                base_url=URL + "/v1", api_key=KEY, timeout=TIMEOUT, max_retries=0
            ) as async_client:
                chunks = await async_client.chat.completions.create(
                    model=RESPONSES_ONLY, messages=MESSAGES, stream=True
                )
                return "".join([c.choices[0].delta.content or "" async for c in chunks])

        self.assertEqual(asyncio.run(stream()), TEXT)

    def test_incomplete_answer_is_finish_reason_length(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            stream=True,
            extra_body=fake(final_event="response.incomplete"),
        )
        finishes = [c.choices[0].finish_reason for c in stream if c.choices[0].finish_reason]
        self.assertEqual(finishes, ["length"])

    def test_failed_stream_raises_an_api_error(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            stream=True,
            extra_body=fake(final_event="response.failed"),
        )
        with self.assertRaises(openai.APIError):
            list(stream)

    def test_cut_upstream_stream_raises_an_api_error(self):
        stream = client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            stream=True,
            extra_body=fake(cut_after_chunks=2),
        )
        with self.assertRaises(openai.APIError):
            list(stream)

    def test_upstream_throttling_is_a_rate_limit_error(self):
        with self.assertRaises(openai.RateLimitError):
            client().chat.completions.create(
                model=RESPONSES_ONLY, messages=MESSAGES, extra_body=fake(status=429)
            )


class ResponsesOnChatOnlyModel(unittest.TestCase):
    """`OpenAI().responses` against a deployment that answers only chat completions."""

    def check_response(self, response):
        self.assertIsInstance(response, Response)
        self.assertEqual(response.object, "response")
        self.assertEqual(response.status, "completed")
        self.assertTrue(response.id)
        self.assertEqual(response.output_text, TEXT)
        self.assertEqual([item.type for item in response.output], ["message"])
        self.assertEqual(response.output[0].role, "assistant")
        self.assertGreater(response.usage.input_tokens, 0)
        self.assertGreater(response.usage.output_tokens, 0)
        self.assertEqual(
            response.usage.total_tokens,
            response.usage.input_tokens + response.usage.output_tokens,
        )

    def test_plain(self):
        response = client().responses.create(
            model=CHAT_ONLY, instructions="Be brief.", input="Say hi"
        )
        self.check_response(response)

    def test_message_items(self):
        response = client().responses.create(
            model=CHAT_ONLY,
            input=[
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
            ],
        )
        self.check_response(response)

    def test_streaming_helper(self):
        with client().responses.stream(model=CHAT_ONLY, input="Say hi") as stream:
            events = list(stream)
            final = stream.get_final_response()
        types = [event.type for event in events]
        self.assertEqual(types[0], "response.created")
        self.assertEqual(types[-1], "response.completed")
        self.assertIn("response.in_progress", types)
        self.assertIn("response.output_item.added", types)
        self.assertIn("response.output_text.done", types)
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        self.assertEqual(deltas, TEXT)
        numbers = [event.sequence_number for event in events]
        self.assertEqual(numbers, list(range(len(events))))
        self.check_response(final)
        self.assertEqual(events[-1].response.id, events[0].response.id)

    def test_streaming_events(self):
        stream = client().responses.create(model=CHAT_ONLY, input="Say hi", stream=True)
        events = list(stream)
        self.assertEqual(events[0].type, "response.created")
        self.assertEqual(events[-1].type, "response.completed")
        self.check_response(events[-1].response)

    def test_function_call_round_trip(self):
        first = client().responses.create(
            model=CHAT_ONLY, input="Weather in Oslo?", tools=RESPONSES_TOOLS, extra_body=CALL_WEATHER
        )
        self.assertIsInstance(first, Response)
        self.assertEqual(first.status, "completed")
        calls = [item for item in first.output if item.type == "function_call"]
        self.assertEqual(len(calls), 1)
        call = calls[0]
        self.assertEqual(call.name, "get_weather")
        self.assertEqual(json.loads(call.arguments), {"city": "Oslo"})
        self.assertTrue(call.call_id)

        # The usual loop: the returned output items go back as they are, then the call's output.
        second = client().responses.create(
            model=CHAT_ONLY,
            input=[{"role": "user", "content": "Weather in Oslo?"}]
            + first.output
            + [{"type": "function_call_output", "call_id": call.call_id, "output": WEATHER}],
            tools=RESPONSES_TOOLS,
        )
        self.check_response(second)

    def test_streamed_function_call(self):
        with client().responses.stream(
            model=CHAT_ONLY, input="Weather in Oslo?", tools=RESPONSES_TOOLS, extra_body=CALL_WEATHER
        ) as stream:
            events = list(stream)
            final = stream.get_final_response()
        types = [event.type for event in events]
        self.assertIn("response.function_call_arguments.delta", types)
        self.assertIn("response.function_call_arguments.done", types)
        self.assertEqual(types[-1], "response.completed")
        calls = [item for item in final.output if item.type == "function_call"]
        self.assertEqual([c.name for c in calls], ["get_weather"])
        self.assertEqual(json.loads(calls[0].arguments), {"city": "Oslo"})


    def test_parse_into_a_pydantic_model(self):
        response = client().responses.parse(
            model=CHAT_ONLY, input="Weather in Oslo?", text_format=Weather, extra_body=ANSWER_WEATHER
        )
        self.assertEqual(response.output_parsed, Weather(temperature_c=12))

    def test_codex_style_request(self):
        response = client().responses.create(
            model=CHAT_ONLY,
            instructions="Be brief.",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Say hi"}]}],
            store=False,
            include=["reasoning.encrypted_content"],
            reasoning={"effort": "low", "summary": "auto"},
            tools=RESPONSES_TOOLS,
            tool_choice="auto",
            parallel_tool_calls=False,
            stream=True,
        )
        events = list(response)
        self.assertEqual(events[-1].type, "response.completed")
        self.check_response(events[-1].response)

    def test_stateful_parameter_is_a_bad_request_naming_it(self):
        with self.assertRaises(openai.BadRequestError) as raised:
            client().responses.create(
                model=CHAT_ONLY, input="Say hi", previous_response_id="resp_123"
            )
        self.assertEqual(raised.exception.param, "previous_response_id")

    def test_cut_upstream_stream_ends_with_error_and_failed_events(self):
        stream = client().responses.create(
            model=CHAT_ONLY, input="Say hi", stream=True, extra_body=fake(cut_after_chunks=2)
        )
        types = [event.type for event in stream]
        self.assertEqual(types[0], "response.created")
        self.assertEqual(types[-2:], ["error", "response.failed"])

    def test_upstream_throttling_is_a_rate_limit_error(self):
        with self.assertRaises(openai.RateLimitError):
            client().responses.create(model=CHAT_ONLY, input="Say hi", extra_body=fake(status=429))


class EmbeddingsAndModels(unittest.TestCase):
    def check_embeddings(self, result):
        self.assertIsInstance(result, CreateEmbeddingResponse)
        self.assertEqual(len(result.data), 1)
        vector = result.data[0].embedding
        self.assertGreater(len(vector), 0)
        self.assertTrue(all(isinstance(x, float) for x in vector))
        self.assertGreater(result.usage.prompt_tokens, 0)

    def test_embeddings(self):
        self.check_embeddings(client().embeddings.create(model=EMBEDDING, input="hello"))

    def test_embeddings_as_floats(self):
        self.check_embeddings(
            client().embeddings.create(model=EMBEDDING, input="hello", encoding_format="float")
        )

    def test_models_list_and_retrieve(self):
        models = list(client().models.list())
        self.assertTrue(all(isinstance(m, Model) for m in models))
        ids = {m.id for m in models}
        self.assertLessEqual({RESPONSES_ONLY, CHAT_ONLY, EMBEDDING}, ids)
        model = client().models.retrieve(CHAT_ONLY)
        self.assertIsInstance(model, Model)
        self.assertEqual(model.id, CHAT_ONLY)
        self.assertEqual(model.object, "model")


class AzureClient(ChatChecks):
    """`AzureOpenAI` with the gateway as its endpoint and a client key as its api-key."""

    def test_chat_plain(self):
        completion = azure_client().chat.completions.create(
            model=RESPONSES_ONLY, messages=MESSAGES
        )
        self.check_completion(completion)

    def test_chat_streaming(self):
        stream = azure_client().chat.completions.create(
            model=RESPONSES_ONLY,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        self.check_stream_with_usage(stream)

    def test_embeddings(self):
        result = azure_client().embeddings.create(model=EMBEDDING, input="hello")
        self.assertIsInstance(result, CreateEmbeddingResponse)
        self.assertGreater(len(result.data[0].embedding), 0)

    def test_responses(self):
        response = azure_client().responses.create(model=CHAT_ONLY, input="Say hi")
        self.assertIsInstance(response, Response)
        self.assertEqual(response.output_text, TEXT)


class Errors(unittest.TestCase):
    def test_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as raised:
            client().chat.completions.create(model="no-such-model", messages=MESSAGES)
        self.assertEqual(raised.exception.status_code, 404)

    def test_unknown_model_is_not_found_when_streaming(self):
        with self.assertRaises(openai.NotFoundError):
            client().chat.completions.create(
                model="no-such-model", messages=MESSAGES, stream=True
            )

    def test_unknown_model_is_not_found_for_retrieve(self):
        with self.assertRaises(openai.NotFoundError):
            client().models.retrieve("no-such-model")

    def test_bad_key_is_an_authentication_error(self):
        with self.assertRaises(openai.AuthenticationError) as raised:
            client(key="sk-wrong").chat.completions.create(
                model=RESPONSES_ONLY, messages=MESSAGES
            )
        self.assertEqual(raised.exception.status_code, 401)

    def test_bad_key_is_an_authentication_error_for_azure(self):
        with self.assertRaises(openai.AuthenticationError):
            azure_client(key="sk-wrong").chat.completions.create(
                model=RESPONSES_ONLY, messages=MESSAGES
            )

    def test_untranslatable_parameter_is_a_bad_request_naming_it(self):
        with self.assertRaises(openai.BadRequestError) as raised:
            client().chat.completions.create(model=RESPONSES_ONLY, messages=MESSAGES, n=2)
        self.assertEqual(raised.exception.param, "n")
        self.assertEqual(raised.exception.code, "unsupported_parameter")

