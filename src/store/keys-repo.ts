import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { StoreUnavailable } from "../domain/errors.ts"
import type { OrgId } from "../domain/ids.ts"
import type { ApiKey, KeyId, KeyLimits } from "../domain/keys.ts"
import { toIso } from "./rows.ts"
import { orStoreUnavailable } from "./store-errors.ts"

interface KeyRow {
  readonly id: string
  readonly org_id: string
  readonly name: string | null
  readonly prefix: string
  readonly limits: KeyLimits | string | null
  readonly created_at: Date | string
  readonly last_used_at: Date | string | null
  readonly revoked_at: Date | string | null
}

/** Every column but the hash: nothing read back for a caller ever carries it. */
const columns = "id, org_id, name, prefix, limits, created_at, last_used_at, revoked_at"

// Rows are trusted (the gateway wrote them), so they are mapped without a decode pass.
const keyFromRow = (row: KeyRow): ApiKey => ({
  key_id: row.id as KeyId,
  org_id: row.org_id,
  name: row.name,
  prefix: row.prefix,
  created_at: toIso(row.created_at),
  last_used_at: row.last_used_at === null ? null : toIso(row.last_used_at),
  revoked_at: row.revoked_at === null ? null : toIso(row.revoked_at),
  limits: row.limits === null ? {} : typeof row.limits === "string" ? JSON.parse(row.limits) : row.limits,
})

export interface NewKey {
  readonly id: KeyId
  readonly org: OrgId
  readonly name: string | null
  readonly prefix: string
  readonly secretHash: string
  readonly limits: KeyLimits
}

/** API keys: stored by the hash of their secret, never the secret. */
export class KeysRepo extends Context.Service<
  KeysRepo,
  {
    readonly insert: (key: NewKey) => Effect.Effect<ApiKey, StoreUnavailable>
    /** The key whose secret has this hash, revoked or not. */
    readonly findByHash: (hash: string) => Effect.Effect<Option.Option<ApiKey>, StoreUnavailable>
    readonly find: (id: KeyId) => Effect.Effect<Option.Option<ApiKey>, StoreUnavailable>
    /** These keys as they are now (a missing id is a deleted key: absent from the answer). */
    readonly findMany: (ids: ReadonlyArray<KeyId>) => Effect.Effect<ReadonlyArray<ApiKey>, StoreUnavailable>
    /** Newest first; every org's when `org` is undefined. */
    readonly list: (org: OrgId | undefined) => Effect.Effect<ReadonlyArray<ApiKey>, StoreUnavailable>
    readonly update: (
      id: KeyId,
      change: { readonly name?: string | null | undefined; readonly limits?: KeyLimits | undefined },
    ) => Effect.Effect<Option.Option<ApiKey>, StoreUnavailable>
    /** Revokes it (once: a second revoke keeps the first time); none when there is no such key. */
    readonly revoke: (id: KeyId) => Effect.Effect<Option.Option<ApiKey>, StoreUnavailable>
    /** Marks these keys used now (one statement for a batch). */
    readonly touch: (ids: ReadonlyArray<KeyId>) => Effect.Effect<void, StoreUnavailable>
    readonly count: Effect.Effect<number, StoreUnavailable>
  }
>()("dac/store/KeysRepo") {
  static readonly layer = Layer.effect(
    KeysRepo,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const one = (rows: ReadonlyArray<KeyRow>) => Option.map(Option.fromNullishOr(rows[0]), keyFromRow)

      const insert = Effect.fn("KeysRepo.insert")(function* (key: NewKey) {
        const rows = yield* sql<KeyRow>`
          INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, limits)
          VALUES (${key.id}, ${key.org}, ${key.name}, ${key.prefix}, ${key.secretHash},
                  ${JSON.stringify(key.limits)}::jsonb)
          RETURNING ${sql.literal(columns)}`
        return keyFromRow(rows[0]!)
      }, orStoreUnavailable("KeysRepo.insert"))

      const findByHash = Effect.fn("KeysRepo.findByHash")(function* (hash: string) {
        return one(
          yield* sql<KeyRow>`SELECT ${sql.literal(columns)} FROM api_keys WHERE secret_hash = ${hash}`,
        )
      }, orStoreUnavailable("KeysRepo.findByHash"))

      const find = Effect.fn("KeysRepo.find")(function* (id: KeyId) {
        return one(yield* sql<KeyRow>`SELECT ${sql.literal(columns)} FROM api_keys WHERE id = ${id}`)
      }, orStoreUnavailable("KeysRepo.find"))

      const findMany = Effect.fn("KeysRepo.findMany")(function* (ids: ReadonlyArray<KeyId>) {
        if (ids.length === 0) return []
        const rows =
          yield* sql<KeyRow>`SELECT ${sql.literal(columns)} FROM api_keys WHERE id IN ${sql.in(ids)}`
        return rows.map(keyFromRow)
      }, orStoreUnavailable("KeysRepo.findMany"))

      const list = Effect.fn("KeysRepo.list")(function* (org: OrgId | undefined) {
        const rows =
          org === undefined
            ? yield* sql<KeyRow>`
                SELECT ${sql.literal(columns)} FROM api_keys ORDER BY created_at DESC, id DESC`
            : yield* sql<KeyRow>`
                SELECT ${sql.literal(columns)} FROM api_keys WHERE org_id = ${org}
                ORDER BY created_at DESC, id DESC`
        return rows.map(keyFromRow)
      }, orStoreUnavailable("KeysRepo.list"))

      const update = Effect.fn("KeysRepo.update")(function* (
        id: KeyId,
        change: { readonly name?: string | null | undefined; readonly limits?: KeyLimits | undefined },
      ) {
        // An absent field keeps its value; `name: null` clears the name.
        const setName = change.name !== undefined
        const limits = change.limits === undefined ? null : JSON.stringify(change.limits)
        const rows = yield* sql<KeyRow>`
          UPDATE api_keys
          SET name = CASE WHEN ${setName} THEN ${change.name ?? null} ELSE name END,
              limits = COALESCE(${limits}::jsonb, limits)
          WHERE id = ${id}
          RETURNING ${sql.literal(columns)}`
        return one(rows)
      }, orStoreUnavailable("KeysRepo.update"))

      const revoke = Effect.fn("KeysRepo.revoke")(function* (id: KeyId) {
        const rows = yield* sql<KeyRow>`
          UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = ${id}
          RETURNING ${sql.literal(columns)}`
        return one(rows)
      }, orStoreUnavailable("KeysRepo.revoke"))

      const touch = Effect.fn("KeysRepo.touch")(function* (ids: ReadonlyArray<KeyId>) {
        if (ids.length === 0) return
        yield* sql`UPDATE api_keys SET last_used_at = now() WHERE id IN ${sql.in(ids)}`
      }, orStoreUnavailable("KeysRepo.touch"))

      const count = sql<{ n: number | string }>`SELECT count(*)::int AS n FROM api_keys`.pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        orStoreUnavailable("KeysRepo.count"),
      )

      return KeysRepo.of({ insert, findByHash, find, findMany, list, update, revoke, touch, count })
    }),
  )
}
