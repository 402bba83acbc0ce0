import { Context, Effect, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { OrgId } from "../../src/domain/ids.ts"
import type { KeyId } from "../../src/domain/keys.ts"
import { hashSecret, newSecret } from "../../src/engine/key-secrets.ts"
import { KeysRepo } from "../../src/store/keys-repo.ts"
import { type RunningGateway, startGateway } from "../support/gateway.ts"

let gateway: RunningGateway
let repo: KeysRepo["Service"]
beforeAll(async () => {
  gateway = await startGateway()
  repo = Context.get(gateway.context as Context.Context<KeysRepo>, KeysRepo)
})
afterAll(() => gateway?.close())
const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

describe("KeysRepo", () => {
  it("stores a key by its hash; changes keep what is not sent; a second revoke keeps the first time", async () => {
    const org = `repo-${crypto.randomUUID()}` as OrgId
    const secret = newSecret()
    expect(secret).toMatch(/^dac_[A-Za-z0-9_-]{43}$/)
    const id = crypto.randomUUID() as KeyId
    const key = await run(
      repo.insert({
        id,
        org,
        name: "n",
        prefix: secret.slice(0, 12),
        secretHash: hashSecret(secret),
        limits: {},
      }),
    )
    expect(key).toMatchObject({ key_id: id, org_id: org, name: "n", revoked_at: null, last_used_at: null })
    expect(Option.getOrThrow(await run(repo.findByHash(hashSecret(secret)))).key_id).toBe(id)
    expect(Option.isNone(await run(repo.findByHash(hashSecret(`${secret}x`))))).toBe(true)
    const limited = Option.getOrThrow(await run(repo.update(id, { limits: { tokens_per_day: 5 } })))
    expect(limited).toMatchObject({ name: "n", limits: { tokens_per_day: 5 } })
    const renamed = Option.getOrThrow(await run(repo.update(id, { name: null })))
    expect(renamed).toMatchObject({ name: null, limits: { tokens_per_day: 5 } })
    await run(repo.touch([id]))
    expect(Option.getOrThrow(await run(repo.find(id))).last_used_at).not.toBeNull()
    const first = Option.getOrThrow(await run(repo.revoke(id))).revoked_at
    expect(first).not.toBeNull()
    expect(Option.getOrThrow(await run(repo.revoke(id))).revoked_at).toBe(first)
    expect((await run(repo.list(org))).map((k) => k.key_id)).toEqual([id])
    expect(await run(repo.findMany([id, crypto.randomUUID() as KeyId]))).toHaveLength(1)
    expect(Option.isNone(await run(repo.revoke(crypto.randomUUID() as KeyId)))).toBe(true)
  })
})
