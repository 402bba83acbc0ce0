import { Effect, Option } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { GenerationRelay } from "../engine/relay.ts"
import { SharedPacer } from "../engine/shared-pacer.ts"
import { ThreadLocks } from "../engine/thread-locks.ts"
import { SharedRedis } from "../store/redis.ts"
import { hasOpsAccess } from "./ops-guard.ts"

/** `/ready`'s cluster fields (api.ts `readiness`): replica, Redis state, the shared budget. */
export const clusterReadiness = Effect.gen(function* () {
  const redis = yield* Effect.serviceOption(SharedRedis)
  const pacer = yield* Effect.serviceOption(SharedPacer)
  const relay = yield* Effect.serviceOption(GenerationRelay)
  const threadLocks = yield* Effect.serviceOption(ThreadLocks)
  if (Option.isNone(redis) || Option.isNone(pacer)) return undefined
  const status = redis.value.status()
  const shared = yield* pacer.value.status
  return {
    replica: redis.value.replicaId,
    redis: { state: status.state, since: status.since, outages: status.outages },
    shared: {
      replicas: redis.value.replicaCount,
      leaseMs: shared.leaseMs,
      limits: status.state === "up" ? ("shared" as const) : ("fallback" as const),
      pacer: shared.providers,
      cost: shared.cost,
      generations: Option.isSome(relay) ? relay.value.status() : undefined,
      threadsHeld: Option.isSome(threadLocks) ? threadLocks.value.held() : undefined,
    },
  }
})

/**
 * With REDIS_URL, adds the cluster fields to `/ready`'s JSON (when the caller may see details).
 * A middleware rather than a change to SystemHandlers so that the readiness check itself stays as
 * it is; without REDIS_URL it passes every response through untouched.
 */
export const clusterReady = HttpRouter.middleware(
  (app) =>
    Effect.gen(function* () {
      const response = yield* app
      const request = yield* HttpServerRequest.HttpServerRequest
      if (request.method !== "GET" || !/^\/ready\/?(\?|$)/.test(request.url)) return response
      const extra = yield* clusterReadiness
      if (extra === undefined || response.body._tag !== "Uint8Array" || !(yield* hasOpsAccess))
        return response
      const body = JSON.parse(new TextDecoder().decode(response.body.body)) as Record<string, unknown>
      return HttpServerResponse.jsonUnsafe(
        { ...body, ...extra },
        { status: response.status, headers: response.headers },
      )
    }),
  { global: true },
)
