/**
 * `npm run keys -- create --org acme [--name ci] [--rpm N] [--concurrency N] [--tokens-per-day N]`,
 * `npm run keys -- list [--org acme]`, `npm run keys -- revoke <key_id>`: API keys on the store the
 * gateway would use (DATABASE_URL, else the embedded one in DATA_DIR). Answers are JSON on stdout;
 * `create`'s is the only place the secret is ever shown.
 *
 * The embedded store is one PGlite directory that one process may open at a time: while a gateway
 * runs on it, this refuses (saying so) — use that gateway's admin API instead.
 */
import { Effect, Layer, Logger, References, Schema } from "effect"
import { AppConfig } from "../src/config.ts"
import { OrgId } from "../src/domain/ids.ts"
import { KeyId, type KeyLimits } from "../src/domain/keys.ts"
import { ApiKeys, issuedKeyAnswer } from "../src/engine/api-keys.ts"
import { KeysRepo } from "../src/store/keys-repo.ts"
import { SqlLive } from "../src/store/sql.ts"

const usage = `usage:
  npm run keys -- create --org <org_id> [--name <name>] [--rpm N] [--concurrency N] [--tokens-per-day N]
  npm run keys -- list [--org <org_id>]
  npm run keys -- revoke <key_id>`

const [command, ...rest] = process.argv.slice(2)
const option = (name: string) => {
  const index = rest.indexOf(name)
  return index >= 0 ? rest[index + 1] : undefined
}

class CliError extends Schema.TaggedError<CliError>()("CliError", { message: Schema.String }) {}

const orgArg = (text: string | undefined) =>
  text === undefined
    ? Effect.succeed(undefined)
    : Schema.is(OrgId)(text)
      ? Effect.succeed(text)
      : Effect.fail(
          new CliError({ message: `--org: "${text}" is not an org id (1-128 of A-Z a-z 0-9 . _ : @ -)` }),
        )

const limitArg = (name: string) => {
  const text = option(name)
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`)
  return n
}

const print = (value: unknown) => Effect.sync(() => console.log(JSON.stringify(value, null, 2)))

const program = Effect.gen(function* () {
  const keys = yield* ApiKeys
  switch (command) {
    case "create": {
      const org = yield* orgArg(option("--org"))
      if (org === undefined) return yield* new CliError({ message: `create needs --org\n${usage}` })
      const limits: Record<string, number> = {}
      const parsed = yield* Effect.try({
        try: () => ({
          requests_per_minute: limitArg("--rpm"),
          concurrent_requests: limitArg("--concurrency"),
          tokens_per_day: limitArg("--tokens-per-day"),
        }),
        catch: (error) => new CliError({ message: String((error as Error).message) }),
      })
      for (const [name, value] of Object.entries(parsed)) if (value !== undefined) limits[name] = value
      const issued = yield* keys.issue({
        org,
        name: option("--name") ?? null,
        limits: limits as KeyLimits,
      })
      return yield* print(issuedKeyAnswer(issued))
    }
    case "list":
      return yield* print({ keys: yield* keys.list(yield* orgArg(option("--org"))) })
    case "revoke": {
      const id = rest[0]
      if (id === undefined || !Schema.is(KeyId)(id)) {
        return yield* new CliError({ message: `revoke needs a key_id (a UUID)\n${usage}` })
      }
      return yield* print(yield* keys.revoke(id))
    }
    default:
      return yield* new CliError({ message: usage })
  }
})

const layer = ApiKeys.layer.pipe(
  Layer.provideMerge(KeysRepo.layer),
  Layer.provideMerge(SqlLive),
  Layer.provideMerge(AppConfig.layer),
  // Only warnings and worse on stderr: stdout is the answer.
  Layer.provideMerge(
    Layer.mergeAll(Logger.layer([Logger.consoleJson]), Layer.succeed(References.MinimumLogLevel, "Warn")),
  ),
)

const exit = await Effect.runPromiseExit(
  Effect.scoped(Layer.build(layer).pipe(Effect.flatMap((context) => Effect.provide(program, context)))),
)
if (exit._tag === "Failure") {
  const failure = exit.cause.reasons[0]
  const error =
    failure?._tag === "Fail" ? failure.error : failure?._tag === "Die" ? failure.defect : exit.cause
  console.error(`keys: ${(error as { message?: string }).message ?? String(error)}`)
  process.exit(1)
}
process.exit(0)
