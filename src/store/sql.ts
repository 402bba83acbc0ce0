import { NodeServices } from "@effect/platform-node"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted } from "effect"
import { AppConfig } from "../config.ts"
import { EmbeddedPostgres } from "./embedded.ts"
import { migrations } from "./migrations.ts"

const MigrationsLayer = PgMigrator.layer({ loader: PgMigrator.fromRecord(migrations) }).pipe(
  Layer.provide(NodeServices.layer),
)

/** Real PostgreSQL at `url`, migrated. */
export const postgresLayer = (url: Redacted.Redacted<string>, maxConnections = 10) =>
  MigrationsLayer.pipe(Layer.provideMerge(PgClient.layer({ url, maxConnections })))

/** Embedded PGlite (data in `dataDir`, or in memory when undefined), migrated. */
export const embeddedLayer = (dataDir: string | undefined) =>
  MigrationsLayer.pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(EmbeddedPostgres, ({ connect }) =>
          // One backend behind the channel: a second pooled connection would interleave its
          // extended-protocol messages with the first's. No TLS: the bytes never leave the process.
          PgClient.layer({
            stream: connect,
            ssl: false,
            username: "postgres",
            database: "postgres",
            maxConnections: 1,
          }),
        ),
      ),
    ),
    Layer.provide(EmbeddedPostgres.layer(dataDir)),
  )

/** The store: PostgreSQL when `DATABASE_URL` is set, the embedded one in `DATA_DIR` otherwise. */
export const SqlLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    return Option.match(config.databaseUrl, {
      onSome: (url) => postgresLayer(url, config.databasePoolSize),
      onNone: () => embeddedLayer(config.dataDir),
    })
  }),
)

export const describeStore = (url: Option.Option<Redacted.Redacted<string>>) =>
  Option.match(url, {
    onSome: (u) => `postgres ${new URL(Redacted.value(u)).host}`,
    onNone: () => "embedded",
  })
