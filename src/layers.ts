import { Effect, Layer, Logger, Option, References } from "effect"
import { AppConfig } from "./config.ts"
import { ApiKeys } from "./engine/api-keys.ts"
import { Coalescer } from "./engine/coalescer.ts"
import { Generations } from "./engine/generations.ts"
import { KeyLimiter } from "./engine/key-limits.ts"
import { Pacer } from "./engine/pacer.ts"
import { AuthStartup } from "./engine/quick-start.ts"
import { GenerationRelay } from "./engine/relay.ts"
import { ReplyProgress } from "./engine/reply-progress.ts"
import { sharedKeyLimiterLayer } from "./engine/shared-key-limits.ts"
import { sharedPacerLayer } from "./engine/shared-pacer.ts"
import { ThreadActors } from "./engine/thread-actors.ts"
import { ThreadLocks } from "./engine/thread-locks.ts"
import { Turns } from "./engine/turns.ts"
import { HttpServerLive } from "./http/server.ts"
import { GracefulShutdown } from "./http/shutdown.ts"
import { Providers } from "./providers/providers.ts"
import { KeysRepo } from "./store/keys-repo.ts"
import { MessagesRepo } from "./store/messages-repo.ts"
import { SharedRedis } from "./store/redis.ts"
import { RequestLogRepo } from "./store/request-log-repo.ts"
import { SqlLive } from "./store/sql.ts"
import { ThreadsRepo } from "./store/threads-repo.ts"
import { OtelLive } from "./telemetry/otel.ts"
import { ProcessMetrics } from "./telemetry/process-metrics.ts"
import { RequestLog } from "./telemetry/request-log.ts"

/** Assistant messages a crash left `pending`/`streaming` become `interrupted` before anything else runs. */
const CrashSweep = Layer.effectDiscard(
  Effect.gen(function* () {
    const { replicaId, databaseUrl } = yield* AppConfig
    // On the embedded store (one process at a time holds its DATA_DIR) every unfinished reply is a
    // dead process's. On PostgreSQL: its own id's (a replica starting again runs none of them) and
    // those whose lease ran out, never the live replies of another process on the same database.
    const swept = yield* (yield* MessagesRepo).sweepInterrupted({
      ownedBy: replicaId,
      everything: Option.isNone(databaseUrl),
    })
    if (swept > 0) yield* Effect.logWarning("marked interrupted replies left by a crash", { count: swept })
  }),
)

const Repos = Layer.mergeAll(
  ThreadsRepo.layer,
  MessagesRepo.layer,
  RequestLogRepo.layer,
  KeysRepo.layer,
).pipe(Layer.provideMerge(SqlLive))

/**
 * The pacer and the key limits: in this process alone, or with REDIS_URL shared by every replica
 * through Redis (README, "Several replicas"). Without REDIS_URL no Redis code is built or run.
 */
const Limits: Layer.Layer<Pacer | KeyLimiter | GenerationRelay | ThreadLocks, never, AppConfig> =
  Layer.unwrap(
    Effect.map(AppConfig, (config) =>
      Option.isNone(config.cluster.redisUrl)
        ? Layer.mergeAll(Pacer.layer, KeyLimiter.layer, GenerationRelay.layerLocal, ThreadLocks.layerLocal)
        : Layer.mergeAll(
            sharedPacerLayer,
            sharedKeyLimiterLayer,
            GenerationRelay.layer,
            ThreadLocks.layer,
          ).pipe(Layer.provideMerge(SharedRedis.layer)),
    ),
  )

/**
 * The engine's services over the repositories and the configuration (tests build it on their own
 * store), with the providers given (a scripted provider in tests).
 */
export const engineServices = <E>(providers: Layer.Layer<Providers, E, AppConfig>) =>
  Turns.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(Generations.layer, ThreadActors.layer)),
    Layer.provideMerge(
      Layer.mergeAll(
        ReplyProgress.layer,
        RequestLog.layer,
        ProcessMetrics.layer,
        providers,
        Coalescer.layer,
        Limits,
      ),
    ),
  )

export const EngineServices = engineServices(Providers.layer)

/** What a test may swap in the whole gateway. */
export interface AppOverrides {
  readonly providers?: Layer.Layer<Providers, unknown, AppConfig> | undefined
}

const engine = (overrides: AppOverrides) =>
  engineServices(overrides.providers ?? Providers.layer).pipe(
    Layer.provideMerge(AuthStartup),
    Layer.provideMerge(ApiKeys.layer),
    Layer.provideMerge(CrashSweep),
    Layer.provideMerge(Repos),
  )

const LoggingLive = Layer.unwrap(
  Effect.map(AppConfig, (config) =>
    Layer.mergeAll(
      Logger.layer([Logger.consoleJson]),
      Layer.succeed(References.MinimumLogLevel, config.logLevel),
    ),
  ),
)

/** The whole gateway for a given configuration layer: store, engine, HTTP server. */
export const appLayer = (config: Layer.Layer<AppConfig, unknown>, overrides: AppOverrides = {}) =>
  GracefulShutdown.pipe(
    Layer.provideMerge(HttpServerLive),
    Layer.provideMerge(engine(overrides)),
    Layer.provideMerge(OtelLive),
    Layer.provideMerge(LoggingLive),
    Layer.provideMerge(config),
  )
