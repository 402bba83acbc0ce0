import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { CompletionRequest, chatMessageOf, optionsOf } from "../../src/http/openai-request.ts"
import { messagesBody } from "../../src/providers/anthropic.ts"
import { generateContentBody } from "../../src/providers/gemini.ts"
import { chatCompletionsBody } from "../../src/providers/openai-compatible.ts"
import type { ChatMessage, ProviderRequest } from "../../src/providers/provider.ts"
import { wireDir } from "../support/wire.ts"

/**
 * The recorded requests that carry tool results and images (`*-request-*.json`): what DAC sends for
 * the same conversation must be what the provider was sent (and answered 200 to).
 */

// biome-ignore lint/suspicious/noExplicitAny: recorded JSON, read field by field in each test
const recorded = (name: string): any => JSON.parse(readFileSync(join(wireDir, `${name}.json`), "utf8"))

/** The option fields the bodies spread in (typed as a record there). */
const fields = (body: unknown) => body as Record<string, unknown>

/** A recorded OpenAI body as a client sends it to DAC's /v1, decoded as DAC decodes it. */
const throughV1 = (name: string, provider: ProviderRequest["provider"] = "openai"): ProviderRequest => {
  const body = Schema.decodeUnknownSync(CompletionRequest)(recorded(name))
  return {
    provider,
    model: body.model,
    messages: body.messages.map(chatMessageOf),
    stream: body.stream === true,
    ...optionsOf(body),
  }
}

describe("OpenAI: the recorded requests go out as they came in", () => {
  it("a tool result answering a call (openai-request-tool-result)", () => {
    const original = recorded("openai-request-tool-result")
    const sent = chatCompletionsBody("openai", throughV1("openai-request-tool-result"))
    expect(fields(sent).tools).toEqual(original.tools)
    // The recording's assistant turn leaves `content` out; DAC says null, as OpenAI's replies do.
    expect(sent.messages).toEqual(
      original.messages.map((m: { role: string }) => (m.role === "assistant" ? { ...m, content: null } : m)),
    )
  })

  it("two parallel results, tool_choice required, strict tools (openai-request-tool-result-parallel)", () => {
    const original = recorded("openai-request-tool-result-parallel")
    const sent = chatCompletionsBody("openai", throughV1("openai-request-tool-result-parallel"))
    expect(sent.messages).toEqual(original.messages)
    expect(fields(sent).tools).toEqual(original.tools)
    expect(sent).toMatchObject({
      tool_choice: "required",
      stream: true,
      stream_options: { include_usage: true },
    })
  })

  it("an image content part (openai-request-image)", () => {
    const original = recorded("openai-request-image")
    expect(chatCompletionsBody("openai", throughV1("openai-request-image")).messages).toEqual(
      original.messages,
    )
  })

  it("JSON output: response_format as OpenAI names it", () => {
    const request: ProviderRequest = {
      provider: "openai",
      model: "gpt-4o",
      messages: [{ role: "user", content: "x" }],
      responseFormat: { type: "json_schema", name: "answer", schema: { type: "object" }, strict: true },
    }
    expect(fields(chatCompletionsBody("openai", request)).response_format).toEqual({
      type: "json_schema",
      json_schema: { name: "answer", schema: { type: "object" }, strict: true },
    })
  })
})

describe("Anthropic: tool_use and tool_result blocks, image blocks", () => {
  it("two tool results in one user turn (anthropic-request-tool-result)", () => {
    const original = recorded("anthropic-request-tool-result")
    // The same conversation as an OpenAI client holds it.
    const messages: ReadonlyArray<ChatMessage> = [
      { role: "user", content: [{ type: "text", text: "Two names for a pet pelican" }] },
      {
        role: "assistant",
        content: " ",
        toolCalls: [
          { id: "toolu_01LtHJmixrs9NcWQkK8hu8hj", name: "pelican_name_generator", arguments: "{}" },
          { id: "toolu_01N8a4jWyf116qKTMqKKmjyt", name: "pelican_name_generator", arguments: "{}" },
        ],
      },
      { role: "tool", toolCallId: "toolu_01LtHJmixrs9NcWQkK8hu8hj", content: "Charles" },
      { role: "tool", toolCallId: "toolu_01N8a4jWyf116qKTMqKKmjyt", content: "Sammy" },
    ]
    const sent = messagesBody({
      provider: "anthropic",
      model: original.model,
      messages,
      maxTokens: original.max_tokens,
      temperature: 1,
      tools: [
        { name: "pelican_name_generator", description: "", parameters: { properties: {}, type: "object" } },
      ],
    })
    expect(sent).toEqual(original)
  })

  it("an image as a base64 block, and by URL (anthropic-request-image)", () => {
    const original = recorded("anthropic-request-image")
    const image = original.messages[0].content[0].source
    const sent = messagesBody({
      provider: "anthropic",
      model: original.model,
      maxTokens: original.max_tokens,
      temperature: 1,
      messages: [
        {
          role: "user",
          content: [
            { type: "image_url", url: `data:${image.media_type};base64,${image.data}` },
            { type: "text", text: "Describe image in three words" },
          ],
        },
      ],
    })
    expect(sent).toEqual(original)
    const byUrl = messagesBody({
      provider: "anthropic",
      model: "m",
      messages: [{ role: "user", content: [{ type: "image_url", url: "https://example.com/a.png" }] }],
    })
    expect(byUrl.messages[0]!.content).toEqual([
      { type: "image", source: { type: "url", url: "https://example.com/a.png" } },
    ])
  })

  it("tool_choice and disable_parallel_tool_use", () => {
    const base: ProviderRequest = {
      provider: "anthropic",
      model: "m",
      messages: [{ role: "user", content: "x" }],
      tools: [{ name: "f" }],
    }
    expect(fields(messagesBody({ ...base, toolChoice: "required" })).tool_choice).toEqual({ type: "any" })
    expect(
      fields(messagesBody({ ...base, toolChoice: { name: "f" }, parallelToolCalls: false })).tool_choice,
    ).toEqual({
      type: "tool",
      name: "f",
      disable_parallel_tool_use: true,
    })
    expect(fields(messagesBody({ ...base, parallelToolCalls: false })).tool_choice).toEqual({
      type: "auto",
      disable_parallel_tool_use: true,
    })
    expect(fields(messagesBody(base)).tools).toEqual([
      { name: "f", input_schema: { type: "object", properties: {} } },
    ])
  })

  it("JSON output: output_config.format, the schema within Anthropic's limits ($defs, refs, nullable objects)", () => {
    const sent = fields(
      messagesBody({
        provider: "anthropic",
        model: "m",
        messages: [{ role: "user", content: "x" }],
        responseFormat: {
          type: "json_schema",
          name: "tree",
          strict: true,
          schema: {
            $defs: {
              leaf: { type: ["object", "null"], properties: { v: { type: "number", exclusiveMinimum: 0 } } },
            },
            type: "object",
            properties: {
              leaves: { type: "array", minItems: 1, items: { $ref: "#/$defs/leaf" } },
              tags: { type: "array", items: [{ type: "string", pattern: "^[a-z]+$" }] },
            },
            required: ["leaves"],
          },
        },
      }),
    )
    expect(sent.output_config).toEqual({
      format: {
        type: "json_schema",
        schema: {
          $defs: {
            leaf: {
              type: ["object", "null"],
              properties: { v: { type: "number", description: "{exclusiveMinimum: 0}" } },
              additionalProperties: false,
            },
          },
          type: "object",
          properties: {
            leaves: { type: "array", minItems: 1, items: { $ref: "#/$defs/leaf" } },
            tags: { type: "array", items: [{ type: "string", pattern: "^[a-z]+$" }] },
          },
          required: ["leaves"],
          additionalProperties: false,
        },
      },
    })
    // Without a format nothing is added.
    expect(
      fields(messagesBody({ provider: "anthropic", model: "m", messages: [{ role: "user", content: "x" }] }))
        .output_config,
    ).toBeUndefined()
  })
})

describe("Gemini: functionCall and functionResponse parts, inline images", () => {
  it("a function's result named and the call's signature sent back (gemini-request-tool-result)", () => {
    const original = recorded("gemini-request-tool-result")
    const call = original.contents[1].parts[0]
    const sent = generateContentBody({
      provider: "gemini",
      model: "gemini-3-pro-preview",
      messages: [
        { role: "user", content: original.contents[0].parts[0].text },
        {
          role: "assistant",
          content: "",
          toolCalls: [
            {
              id: call.functionCall.id,
              name: "get_country",
              arguments: "{}",
              extra: { thoughtSignature: call.thoughtSignature },
            },
          ],
        },
        // As an OpenAI client sends a result: by call id only; the name comes from the call.
        { role: "tool", toolCallId: call.functionCall.id, content: '{"return_value":"Mexico"}' },
      ],
      tools: [
        {
          name: "get_country",
          description: "",
          parameters: original.tools[0].functionDeclarations[0].parameters_json_schema,
        },
      ],
    })
    expect(sent.contents).toEqual(original.contents)
    // The same schema; the recording spells the field snake_case, DAC camelCase (the API takes both).
    expect(fields(sent).tools).toEqual([
      {
        functionDeclarations: [
          {
            name: "get_country",
            description: "",
            parametersJsonSchema: original.tools[0].functionDeclarations[0].parameters_json_schema,
          },
        ],
      },
    ])
  })

  it("a plain-text result is wrapped in an object", () => {
    const sent = generateContentBody({
      provider: "gemini",
      model: "m",
      messages: [
        { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "f", arguments: "{}" }] },
        { role: "tool", toolCallId: "c1", content: "sunny" },
      ],
    })
    expect(sent.contents[1]).toEqual({
      role: "user",
      parts: [{ functionResponse: { id: "c1", name: "f", response: { result: "sunny" } } }],
    })
  })

  it("an inline image (gemini-request-image)", () => {
    const original = recorded("gemini-request-image")
    const image = original.contents[0].parts[1].inlineData
    const sent = generateContentBody({
      provider: "gemini",
      model: "m",
      messages: [
        { role: "system", content: "You are a helpful chatbot." },
        {
          role: "user",
          content: [
            { type: "text", text: "What fruit is in the image?" },
            { type: "image_url", url: `data:${image.mimeType};base64,${image.data}` },
          ],
        },
      ],
    })
    expect(sent.contents).toEqual(original.contents)
    expect(sent.systemInstruction?.parts).toEqual(original.systemInstruction.parts)
  })

  it("tool choice and JSON output", () => {
    const sent = generateContentBody({
      provider: "gemini",
      model: "m",
      messages: [{ role: "user", content: "x" }],
      tools: [{ name: "f" }],
      toolChoice: { name: "f" },
      responseFormat: { type: "json_schema", name: "a", schema: { type: "object" } },
    })
    expect(fields(sent).toolConfig).toEqual({
      functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["f"] },
    })
    expect(sent.generationConfig).toEqual({
      responseMimeType: "application/json",
      responseJsonSchema: { type: "object" },
    })
  })
})
