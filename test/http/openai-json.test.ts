import OpenAI from "openai"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream.ts"
import { type RunningGateway, startGateway } from "../support/gateway.ts"
import { bodyText, loadTranscript, withBody } from "../support/wire.ts"

/**
 * JSON output on Anthropic through DAC's /v1 with the official `openai` SDK: `json_schema` becomes
 * Anthropic's structured outputs (`output_config.format`, src/providers/anthropic-schema.ts), the
 * reply comes back as the message's text; `json_object` is refused naming the provider.
 */

let upstream: FakeUpstream
let gateway: RunningGateway
let client: OpenAI

beforeAll(async () => {
  upstream = await startFakeUpstream()
  gateway = await startGateway(upstream.env())
  client = new OpenAI({ apiKey: "sk-dac-test", baseURL: `${gateway.baseUrl}/v1`, maxRetries: 0 })
})
beforeEach(() => upstream.reset())
afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})

/**
 * A real structured-output exchange: pydantic/pydantic-ai @5039551,
 * tests/models/anthropic/cassettes/test_output/test_no_tools_native_output_strict_true.yaml
 * (claude-sonnet-4-5, `output_config.format` GA form, no beta header). The cassette keeps parsed
 * bodies (keys sorted by the recorder); the request's `output_config` is compared as parsed, the
 * reply is put back into the API's own key order as one compact line (RECON), under the real
 * header set of anthropic-messages-nonstream-tool-use.txt.
 */
const recordedOutputConfig = {
  format: {
    schema: {
      additionalProperties: false,
      properties: { city: { type: "string" }, country: { type: "string" }, population: { type: "integer" } },
      required: ["city", "country", "population"],
      type: "object",
    },
    type: "json_schema",
  },
}
const recordedText = '{"city":"London","country":"United Kingdom","population":9002488}'
const recordedReply = withBody(
  loadTranscript("anthropic-messages-nonstream-tool-use"),
  JSON.stringify({
    id: "msg_01Hfgh959WDWjL5jkM2FQXTL",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-5-20250929",
    content: [{ type: "text", text: recordedText }],
    stop_reason: "end_turn",
    stop_sequence: null,
    stop_details: null,
    usage: {
      input_tokens: 196,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
      output_tokens: 19,
      service_tier: "standard",
      inference_geo: "not_available",
    },
  }),
  "anthropic structured output (pydantic-ai cassette)",
)

/**
 * No streamed structured-output recording was found: anthropic-messages-stream.txt (RAW) with its
 * one `text_delta` replaced by the recorded JSON text in three deltas, in the recorded framing.
 */
const streamedReply = (() => {
  const recorded = loadTranscript("anthropic-messages-stream")
  const text = bodyText(recorded)
  const delta = /event: content_block_delta\ndata: .*\n\n/.exec(text)![0]
  const pieces = [recordedText.slice(0, 9), recordedText.slice(9, 40), recordedText.slice(40)]
  const deltas = pieces
    .map((piece) => delta.replace('"text":"2"', `"text":${JSON.stringify(piece)}`))
    .join("")
  return withBody(recorded, text.replace(delta, deltas), "anthropic structured output, streamed")
})()

/** The schema a client writes for OpenAI: `strict`, a bound Anthropic refuses, no additionalProperties. */
const citySchema: OpenAI.ResponseFormatJSONSchema = {
  type: "json_schema",
  json_schema: {
    name: "city",
    strict: true,
    schema: {
      type: "object",
      properties: {
        city: { type: "string" },
        country: { type: "string" },
        population: { type: "integer" },
      },
      required: ["city", "country", "population"],
    },
  },
}

const ask = () => [{ role: "user" as const, content: `Tell me about London ${crypto.randomUUID()}` }]

describe("response_format on Anthropic", () => {
  it("json_schema → output_config.format, as the recorded request; the reply is the JSON text", async () => {
    upstream.on("anthropic", { transcript: recordedReply })
    const completion = await client.chat.completions.create({
      model: "anthropic/claude-sonnet-4-5",
      messages: ask(),
      response_format: citySchema,
    })
    const sent = upstream.calls("anthropic")[0]!
    const body = sent.body as Record<string, unknown>
    expect(body.output_config).toEqual(recordedOutputConfig)
    // The GA form: no beta header, no `output_format`, no OpenAI-only fields.
    expect(sent.headers["anthropic-beta"]).toBeUndefined()
    expect(body.output_format).toBeUndefined()
    expect(JSON.stringify(body)).not.toContain('"strict"')
    const choice = completion.choices[0]!
    expect(JSON.parse(choice.message.content!)).toEqual({
      city: "London",
      country: "United Kingdom",
      population: 9002488,
    })
    expect(choice.finish_reason).toBe("stop")
    expect(completion.usage).toMatchObject({ prompt_tokens: 196, completion_tokens: 19 })
  })

  it("streams the JSON text (stream(…).finalChatCompletion())", async () => {
    upstream.on("anthropic", { transcript: streamedReply, split: "random", maxWrite: 30 })
    const completion = await client.chat.completions
      .stream({ model: "anthropic/claude-sonnet-4-5", messages: ask(), response_format: citySchema })
      .finalChatCompletion()
    expect(completion.choices[0]!.message.content).toBe(recordedText)
    expect((upstream.calls("anthropic")[0]!.body as Record<string, unknown>).output_config).toEqual(
      recordedOutputConfig,
    )
  })

  it("moves keywords Anthropic refuses into descriptions and closes every object", async () => {
    upstream.on("anthropic", { transcript: recordedReply })
    await client.chat.completions.create({
      model: "anthropic/claude-sonnet-4-5",
      messages: ask(),
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "people",
          schema: {
            type: "object",
            properties: {
              people: {
                type: "array",
                minItems: 2,
                maxItems: 5,
                items: {
                  type: "object",
                  description: "a person",
                  properties: {
                    name: { type: "string", minLength: 1, format: "email" },
                    age: { type: "integer", minimum: 0, maximum: 150 },
                    id: { oneOf: [{ type: "string", format: "uuid" }, { type: "integer" }] },
                  },
                  additionalProperties: true,
                },
              },
            },
          },
        },
      },
    })
    const format = (upstream.calls("anthropic")[0]!.body as { output_config: { format: unknown } })
      .output_config.format
    expect(format).toEqual({
      type: "json_schema",
      schema: {
        type: "object",
        properties: {
          people: {
            type: "array",
            description: "{minItems: 2, maxItems: 5}",
            items: {
              type: "object",
              description: "a person\n\n{additionalProperties: true}",
              properties: {
                name: { type: "string", format: "email", description: "{minLength: 1}" },
                age: { type: "integer", description: "{minimum: 0, maximum: 150}" },
                id: { anyOf: [{ type: "string", format: "uuid" }, { type: "integer" }] },
              },
              additionalProperties: false,
            },
          },
        },
        additionalProperties: false,
      },
    })
  })

  it("json_object is 400 naming the provider and asking for a json_schema; nothing is sent", async () => {
    const error = await client.chat.completions
      .create({
        model: "anthropic/claude-sonnet-4-5",
        messages: ask(),
        response_format: { type: "json_object" },
      })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
    const message = (error as InstanceType<typeof OpenAI.BadRequestError>).message
    expect(message).toContain('provider "anthropic"')
    expect(message).toContain("json_schema")
    expect(upstream.calls()).toHaveLength(0)
  })

  it("a 400 from Anthropic (a model without structured outputs, a schema it refuses) is passed on", async () => {
    upstream.on("anthropic", { transcript: "anthropic-error-400" })
    const error = await client.chat.completions
      .create({ model: "anthropic/claude-3-haiku", messages: ask(), response_format: citySchema })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.BadRequestError)
  })
})
