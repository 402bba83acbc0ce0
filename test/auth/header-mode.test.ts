import { Effect, Exit, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig } from "../../src/config.ts"
import { startGateway } from "../support/gateway.ts"

const configOf = (env: Record<string, string>) =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      return yield* AppConfig
    }).pipe(Effect.provide(AppConfig.fromRecord(env))),
  )

describe("AUTH_MODE and the secrets' configuration", () => {
  it("defaults to keys; refuses an unknown mode; an empty secret counts as unset", async () => {
    const defaults = await configOf({})
    expect(Exit.isSuccess(defaults) && defaults.value.authMode).toBe("keys")
    const bad = await configOf({ AUTH_MODE: "open" })
    expect(Exit.isFailure(bad)).toBe(true)
    const empty = await configOf({ ADMIN_API_KEY: "", OPS_TOKEN: "" })
    expect(Exit.isSuccess(empty) && Option.isNone(empty.value.adminApiKey)).toBe(true)
    expect(Exit.isSuccess(empty) && Option.isNone(empty.value.opsToken)).toBe(true)
    const set = await configOf({ ADMIN_API_KEY: "s3cret" })
    if (!Exit.isSuccess(set)) throw new Error("expected a config")
    expect(Redacted.value(Option.getOrThrow(set.value.adminApiKey))).toBe("s3cret")
    expect(String(set.value.adminApiKey)).not.toContain("s3cret")
  })
})

describe("AUTH_MODE=header", () => {
  it("takes the org from x-org-id, asks for no key, and warns when listening beyond loopback", async () => {
    const logged: Array<string> = []
    const original = console.log
    console.log = (...args: Array<unknown>) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "))
    }
    let gateway: Awaited<ReturnType<typeof startGateway>> | undefined
    try {
      gateway = await startGateway({ AUTH_MODE: "header", HOST: "0.0.0.0" })
    } finally {
      console.log = original
    }
    try {
      expect(logged.some((line) => line.includes("AUTH_MODE=header"))).toBe(true)
      const org = `hdr-${crypto.randomUUID()}`
      const created = await fetch(`${gateway.baseUrl}/api/threads`, {
        method: "POST",
        headers: { "x-org-id": org, "content-type": "application/json" },
        body: "{}",
      })
      expect(created.status).toBe(201)
      const missing = await fetch(`${gateway.baseUrl}/api/threads`)
      expect(missing.status).toBe(400)
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("missing_org_id")
    } finally {
      await gateway.close()
    }
  })

  it("on loopback, says nothing", async () => {
    const logged: Array<string> = []
    const original = console.log
    console.log = (...args: Array<unknown>) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "))
    }
    try {
      const gateway = await startGateway({ AUTH_MODE: "header" })
      await gateway.close()
    } finally {
      console.log = original
    }
    expect(logged.some((line) => line.includes("AUTH_MODE=header"))).toBe(false)
  })
})
