// The official OpenAI Node client against the gateway. Run by sdk-tests/tests/conformance.rs,
// which sets GATEWAY_URL, GATEWAY_KEY, GATEWAY_TEXT (the fake's answer text) and the model ids,
// with the case names as arguments. Exits non-zero when a case fails.

import assert from "node:assert/strict";
import OpenAI, { AzureOpenAI } from "openai";
import { VERSION } from "openai/version";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const TEXT = env("GATEWAY_TEXT");
const RESPONSES_ONLY = env("GATEWAY_RESPONSES_ONLY_MODEL");
const CHAT_ONLY = env("GATEWAY_CHAT_ONLY_MODEL");

const client = new OpenAI({
  baseURL: `${env("GATEWAY_URL")}/v1`,
  apiKey: env("GATEWAY_KEY"),
  timeout: 30_000,
  maxRetries: 0,
});
const azureClient = new AzureOpenAI({
  endpoint: env("GATEWAY_URL"),
  apiKey: env("GATEWAY_KEY"),
  apiVersion: "2024-10-21",
  timeout: 30_000,
  maxRetries: 0,
});
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

// The client adds `output_text` only to whole answers; a stream's final response has the parts.
function checkResponse(response) {
  assert.equal(response.object, "response");
  assert.equal(response.status, "completed");
  assert.deepEqual(
    response.output.map((item) => item.type),
    ["message"],
  );
  const parts = response.output[0].content;
  assert.deepEqual(
    parts.map((part) => part.type),
    ["output_text"],
  );
  assert.equal(parts[0].text, TEXT);
  assert.ok(response.usage.input_tokens > 0);
  assert.ok(response.usage.output_tokens > 0);
}

const cases = {
  // Chat completions streaming against a deployment that answers only the Responses API.
  async "chat-stream"() {
    const stream = await client.chat.completions.create({
      model: RESPONSES_ONLY,
      messages: [{ role: "user", content: "Say hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.every((c) => c.object === "chat.completion.chunk"));
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    assert.equal(withChoices[0].choices[0].delta.role, "assistant");
    assert.equal(withChoices.map((c) => c.choices[0].delta.content ?? "").join(""), TEXT);
    assert.deepEqual(
      withChoices.map((c) => c.choices[0].finish_reason).filter(Boolean),
      ["stop"],
    );
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage.total_tokens > 0);
  },

  // The chat stream helper assembling a streamed tool call (the fake calls get_weather).
  async "chat-tool-call-helper"() {
    const stream = client.chat.completions.stream({
      model: RESPONSES_ONLY,
      messages: [{ role: "user", content: "Weather in Oslo?" }],
      tools: [WEATHER_TOOL],
      fake: { tool_calls: [{ name: "get_weather", arguments: '{"city":"Oslo"}' }] },
    });
    const final = await stream.finalChatCompletion();
    assert.equal(final.choices[0].finish_reason, "tool_calls");
    const [call] = final.choices[0].message.tool_calls;
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "Oslo" });
  },

  // AzureOpenAI streaming chat on the Azure deployment path.
  async "azure-chat-stream"() {
    const stream = await azureClient.chat.completions.create({
      model: RESPONSES_ONLY,
      messages: [{ role: "user", content: "Say hi" }],
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    assert.equal(text, TEXT);
  },

  // Responses streaming (raw events) against a deployment that answers only chat completions.
  async "responses-stream"() {
    const stream = await client.responses.create({
      model: CHAT_ONLY,
      input: "Say hi",
      stream: true,
    });
    const events = [];
    for await (const event of stream) events.push(event);
    assert.equal(events[0].type, "response.created");
    assert.equal(events.at(-1).type, "response.completed");
    assert.deepEqual(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
    );
    const deltas = events.filter((e) => e.type === "response.output_text.delta");
    assert.equal(deltas.map((e) => e.delta).join(""), TEXT);
    checkResponse(events.at(-1).response);
  },

  // The client's Responses stream helper, which rebuilds the response from the events.
  async "responses-helper"() {
    const stream = client.responses.stream({ model: CHAT_ONLY, input: "Say hi" });
    let text = "";
    stream.on("response.output_text.delta", (event) => {
      text += event.delta;
    });
    const final = await stream.finalResponse();
    assert.equal(text, TEXT);
    checkResponse(final);
  },
};

const names = process.argv.slice(2);
console.error(`openai ${VERSION} (Node ${process.version})`);
let failed = 0;
for (const name of names.length > 0 ? names : Object.keys(cases)) {
  const run = cases[name];
  try {
    assert.ok(run, `no case named ${name}`);
    await run();
    console.error(`ok ${name}`);
  } catch (error) {
    failed += 1;
    console.error(`FAIL ${name}\n${error?.stack ?? error}`);
  }
}
process.exitCode = failed === 0 ? 0 : 1;
