import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { sdkGateway } from "../support/sdk-gateway.ts"
import { bodyText, loadTranscript, withBody } from "../support/wire.ts"

/**
 * GENERATION_MAX_BYTES counts a reply's tool-call arguments as well as its text: a reply whose
 * streamed argument fragments grow past it ends like an oversized text reply (`generation_too_large`,
 * the upstream aborted). Through the real server, the real adapters and the official SDK.
 */

const maxBytes = 8_000

const sdk = sdkGateway({ GENERATION_MAX_BYTES: String(maxBytes) })

const tool: OpenAI.ChatCompletionTool = {
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
}

/**
 * Built in the recorded format (no recording streams arguments this large): the first two events of
 * openai-chat-stream-tool-calls.txt (the role, the call's id and name) as recorded, then its third
 * event (an argument fragment) repeated with 1 KB fragments, `count` times. Never finished: the only
 * way its socket closes is DAC aborting the call.
 */
const hugeArguments = (count: number) => {
  const recorded = loadTranscript("openai-chat-stream-tool-calls")
  const events = bodyText(recorded).split("\n\n")
  const fragment = events[2]!.replace('"arguments":"{\\"ci"', `"arguments":"${"a".repeat(1024)}"`)
  if (fragment === events[2]) throw new Error("the recorded fragment changed shape")
  const body = `${[events[0], events[1], ...Array.from({ length: count }, () => fragment)].join("\n\n")}\n\n`
  return withBody(recorded, body, "openai tool call with huge arguments")
}

describe("GENERATION_MAX_BYTES and tool-call arguments", () => {
  it("a stream whose argument fragments grow past the bound ends with generation_too_large, upstream aborted", async () => {
    const transcript = hugeArguments(64)
    sdk.upstream.on("openai", {
      transcript,
      split: "random",
      maxWrite: 700,
      writeDelayMs: 2,
      hangAfterBytes: transcript.body.length,
    })
    const stream = await sdk.client.chat.completions.create({
      model: "openai/gpt-4o",
      messages: [{ role: "user", content: `huge ${crypto.randomUUID()}` }],
      tools: [tool],
      stream: true,
    })
    let argumentBytes = 0
    const error = await (async () => {
      for await (const chunk of stream) {
        for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
          argumentBytes += call.function?.arguments?.length ?? 0
        }
      }
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("generation_too_large")
    // What was streamed stayed within the bound; the upstream call was cut, not read to its end.
    expect(argumentBytes).toBeLessThanOrEqual(maxBytes)
    expect(argumentBytes).toBeGreaterThan(maxBytes - 2048)
    await sdk.upstream.socketClosedAt(sdk.upstream.calls("openai")[0]!, 2_000)
  })

  it("a whole reply with arguments past the bound is 502 generation_too_large", async () => {
    const recorded = loadTranscript("openai-chat-nonstream-tool-calls")
    const body = JSON.parse(bodyText(recorded)) as {
      choices: Array<{ message: { tool_calls: Array<{ function: { arguments: string } }> } }>
    }
    body.choices[0]!.message.tool_calls[0]!.function.arguments = JSON.stringify({
      city: "x".repeat(maxBytes),
    })
    sdk.upstream.on("openai", { transcript: withBody(recorded, JSON.stringify(body)) })
    const error = await sdk.client.chat.completions
      .create({
        model: "openai/gpt-4o",
        messages: [{ role: "user", content: `huge ${crypto.randomUUID()}` }],
        tools: [tool],
      })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OpenAI.APIError)
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(502)
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("generation_too_large")
  })

  it("arguments within the bound still pass", async () => {
    sdk.upstream.on("openai", { transcript: "openai-chat-stream-tool-calls" })
    const completion = await sdk.client.chat.completions
      .stream({
        model: "openai/gpt-4o",
        messages: [{ role: "user", content: `small ${crypto.randomUUID()}` }],
        tools: [tool],
      })
      .finalChatCompletion()
    expect(completion.choices[0]!.message.tool_calls?.length).toBe(2)
  })
})
