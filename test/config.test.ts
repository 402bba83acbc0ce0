import { Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig } from "../src/config.ts"

const load = (env: Record<string, string>) =>
  Effect.runPromise(
    Effect.result(
      Effect.gen(function* () {
        return yield* AppConfig
      }).pipe(Effect.provide(AppConfig.fromRecord(env))),
    ),
  )

describe("configuration", () => {
  it("has working defaults", async () => {
    const result = await load({})
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    const config = result.success
    expect(config.port).toBe(8000)
    expect(config.dataDir).toBe("./data")
    expect(Option.isNone(config.databaseUrl)).toBe(true)
    expect(config.coalesceEnabled).toBe(true)
    expect(config.upstreamStream).toBe("threads")
    expect(config.coalesceErrorTtlMs).toBe(2000)
    expect(config.providers.openai.baseUrl).toBe("https://api.openai.com/v1")
    expect(Option.isNone(config.providers.openai.apiKey)).toBe(true)
    expect(config.modelAliases.size).toBe(0)
  })

  it("reads model aliases, trimming whitespace and skipping empty entries", async () => {
    const result = await load({
      MODEL_ALIASES:
        " fast = mock/faststream-ttft , gpt-4o-mini=openai/gpt-4o-mini,,router=openrouter/meta-llama/llama-3-8b, ",
    })
    if (result._tag !== "Success") throw new Error("expected success")
    expect([...result.success.modelAliases]).toEqual([
      ["fast", { provider: "mock", model: "faststream-ttft" }],
      ["gpt-4o-mini", { provider: "openai", model: "gpt-4o-mini" }],
      // Only the first slash separates the provider: the model keeps the rest.
      ["router", { provider: "openrouter", model: "meta-llama/llama-3-8b" }],
    ])
    const empty = await load({ MODEL_ALIASES: "  " })
    if (empty._tag !== "Success") throw new Error("expected success")
    expect(empty.success.modelAliases.size).toBe(0)
  })

  it.each([
    ["info", "Info"],
    ["WARN", "Warn"],
    ["Debug", "Debug"],
    [" error ", "Error"],
  ])("reads LOG_LEVEL=%j in any case as %s", async (text, level) => {
    const result = await load({ LOG_LEVEL: text })
    if (result._tag !== "Success") throw new Error("expected success")
    expect(result.success.logLevel).toBe(level)
  })

  it("reads provider settings and strips a trailing slash from base URLs", async () => {
    const result = await load({
      OPENAI_BASE_URL: "http://127.0.0.1:9999/v1/",
      OPENAI_API_KEY: "sk-test",
      OPENAI_RPS: "7",
    })
    if (result._tag !== "Success") throw new Error("expected success")
    expect(result.success.providers.openai.baseUrl).toBe("http://127.0.0.1:9999/v1")
    expect(result.success.providers.openai.rps).toBe(7)
    // The key is redacted: printing the config never shows it.
    expect(JSON.stringify(result.success.providers.openai)).not.toContain("sk-test")
    expect(String(Option.getOrThrow(result.success.providers.openai.apiKey))).not.toContain("sk-test")
  })

  it.each([
    [{ PORT: "eighty" }, /PORT: Expected a finite number/],
    [{ PORT: "70000" }, /PORT: Expected a value between 0 and 65535/],
    [{ MOCK_TOKENS: "0" }, /MOCK_TOKENS: Expected a value greater than 0/],
    [{ OPENAI_RPS: "1.5" }, /OPENAI_RPS: Expected an integer/],
    [{ ANTHROPIC_BASE_URL: "not a url" }, /ANTHROPIC_BASE_URL: Expected a valid URL/],
    [{ COALESCE_ENABLED: "maybe" }, /COALESCE_ENABLED/],
    [{ UPSTREAM_STREAM: "sometimes" }, /UPSTREAM_STREAM/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL/],
    // A longer timer would fire at once in Node.
    [{ PACER_MAX_WAIT_MS: "2147483648" }, /PACER_MAX_WAIT_MS: Expected a value between 1 and 2147483647/],
    [{ SHUTDOWN_GRACE_MS: "-1" }, /SHUTDOWN_GRACE_MS: Expected a value between 0 and 2147483647/],
    [{ MODEL_ALIASES: "fast=mock/faststream-ttft,claude" }, /MODEL_ALIASES: entry "claude" has no "="/],
    [
      { MODEL_ALIASES: " = mock/faststream-ttft" },
      /MODEL_ALIASES: entry "= mock\/faststream-ttft" has an empty alias/,
    ],
    [
      { MODEL_ALIASES: "fast=faststream-ttft" },
      /MODEL_ALIASES: alias "fast": target "faststream-ttft" is not provider\/model/,
    ],
    [{ MODEL_ALIASES: "fast=mock/" }, /MODEL_ALIASES: alias "fast": target "mock\/" is not provider\/model/],
    [
      { MODEL_ALIASES: "fast=/faststream-ttft" },
      /MODEL_ALIASES: alias "fast": target "\/faststream-ttft" is not provider\/model/,
    ],
    [
      { MODEL_ALIASES: "fast=acme/turbo" },
      /MODEL_ALIASES: alias "fast": unknown provider "acme" \(expected one of openai, /,
    ],
    [
      { MODEL_ALIASES: "fast=mock/faststream-ttft, fast=openai/gpt-4o-mini" },
      /MODEL_ALIASES: duplicate alias "fast"/,
    ],
  ])("rejects %o naming the variable", async (env, message) => {
    const result = await load(env)
    expect(result._tag).toBe("Failure")
    if (result._tag !== "Failure") return
    expect(result.failure.message).toMatch(message)
    expect(result.failure.message).toMatch(/^Invalid configuration: /)
  })
})
