import { Context, Deferred, Effect, Layer } from "effect"
import { AppConfig } from "../config.ts"
import { RelayedFailure } from "../domain/errors.ts"
import type { GenerationId, MessageId, OrgId, RequestId, ThreadId } from "../domain/ids.ts"
import type { Usage } from "../domain/thread.ts"
import { type RedisScript, SharedRedis } from "../store/redis.ts"
import { transientReply } from "./generation-run.ts"
import { finishedRetentionMs, type Generation, type GenerationOutcome } from "./generations.ts"
import { LiveGeneration } from "./live-generation.ts"
import { claimScript, leasesScript, settleScript } from "./relay-scripts.ts"
import { type Frame, frame, requestFrame } from "./sse-frames.ts"

/**
 * A generation as every replica can find it (with REDIS_URL): who started it (its frames are kept
 * under that request id), which replica runs it, and whose it is.
 */
export interface RelayedTurn {
  readonly leader: RequestId
  readonly generationId: GenerationId
  /** The replica that runs it (`REPLICA_ID`). */
  readonly owner: string
  readonly org: OrgId
  readonly threadId: ThreadId | null
  readonly provider: string
  readonly model: string
  /**
   * The coalescing key of its body: a reused `Idempotency-Key` with another body is told apart.
   * Empty for a turn shared without a claim (a thread turn that bypasses coalescing).
   */
  readonly bodyKey: string
}

/** What a replica's relay shares now (`/ready`'s `shared.generations`). */
export interface RelayStatus {
  /** Generations this replica runs that other replicas can find (running, or ended within 60 s). */
  readonly published: number
  /** Of those, the ones another replica follows (their frames go to Redis). */
  readonly mirrored: number
  /** Copies here of generations other replicas run. */
  readonly copies: number
}

/** How a claimed key's generation ended: its claim is kept for the TTL that fits (Cancelled: none). */
export type ClaimEnd = "Completed" | "Failed" | "Cancelled"

/** What a cancel sent to any replica asks of the others. */
export type CancelScope = "request" | "generation"

type CancelHandler = (org: OrgId, requestId: RequestId, leader: RequestId, scope: CancelScope) => void

/**
 * Generations shared between replicas (README, "Several replicas"). Without REDIS_URL it is off: a
 * generation is this process's alone, and every method does nothing.
 *
 * - **Claims**: the first replica to claim a coalescing key leads; the others follow its generation.
 * - **Frames**: each generation a replica runs for a thread (or leads under a claim) writes its
 *   frames to a Redis Stream under its leader's request id, in batches every few milliseconds; a
 *   replica with a listener on it keeps a copy (a `LiveGeneration` fed from the stream, with its own
 *   listeners, replay and reconnects), read by one blocking `XREAD` for all copies.
 * - **Names**: every request id of a shared generation resolves on any replica (`lookup`).
 * - **Holds**: a replica with listeners on a copy says so on the relay channel every third of
 *   `SHARED_LEASE_MS`; the owner counts it like a listener of its own, so the upstream call is
 *   aborted only when nobody is left anywhere (a hold not renewed lapses after the lease).
 * - **Cancel** from any replica is sent on the channel; each replica applies it to what it has.
 * - **A lost owner**: a copy whose owner's replica lease lapsed ends with `error replica_lost`
 *   (retryable) within `SHARED_LEASE_MS` and a third; its reply is swept as `interrupted` with its
 *   text once its `REPLY_LEASE_MS` lease runs out.
 */
export class GenerationRelay extends Context.Service<
  GenerationRelay,
  {
    readonly enabled: boolean
    /** Claims `key` for `turn` across replicas: undefined when it leads, else the leader elsewhere. */
    readonly claim: (key: string, turn: RelayedTurn) => Effect.Effect<RelayedTurn | undefined>
    /** The claimed key's generation ended: the claim is kept for its TTL, or dropped. */
    readonly settleClaim: (key: string, leader: RequestId, end: ClaimEnd) => void
    /** A generation this replica runs, shared: its frames are relayed, its request ids registered. */
    readonly publish: (generation: LiveGeneration, turn: RelayedTurn) => void
    /**
     * Another request id that follows a shared generation (this replica's or a copy here): found by
     * `lookup` anywhere, and by `copyOf` here.
     */
    readonly name: (requestId: RequestId, generation: Generation) => void
    /** Whether it is a copy of another replica's generation (not one of `Generations`). */
    readonly isCopy: (generation: Generation) => boolean
    /** The shared generation `requestId` of `org` names, when another replica runs it. */
    readonly lookup: (org: OrgId, requestId: RequestId) => Effect.Effect<RelayedTurn | undefined>
    /** This replica's copy of a generation another one runs; undefined when that replica is gone. */
    readonly follow: (turn: RelayedTurn) => Effect.Effect<LiveGeneration | undefined>
    /** The copy here of the generation `requestId` follows, if any. */
    readonly copyOf: (requestId: RequestId) => LiveGeneration | undefined
    /** Tells the other replicas of a cancel (each applies it to what it has). */
    readonly cancel: (org: OrgId, requestId: RequestId, leader: RequestId, scope: CancelScope) => void
    /** What this replica does with a cancel sent to another one. */
    readonly onCancel: (handler: CancelHandler) => void
    /** What it shares now (for `/ready`). */
    readonly status: () => RelayStatus
  }
>()("dac/engine/GenerationRelay") {
  /** No REDIS_URL: nothing is shared. */
  static readonly layerLocal = Layer.succeed(
    GenerationRelay,
    GenerationRelay.of({
      enabled: false,
      claim: () => Effect.succeed(undefined),
      settleClaim: () => {},
      publish: () => {},
      name: () => {},
      isCopy: () => false,
      lookup: () => Effect.succeed(undefined),
      follow: () => Effect.succeed(undefined),
      copyOf: () => undefined,
      cancel: () => {},
      onCancel: () => {},
      status: () => ({ published: 0, mirrored: 0, copies: 0 }),
    }),
  )

  static readonly layer = Layer.effect(GenerationRelay, Effect.gen(makeRelay))
}

/** How long a batch of frames waits before it is written (the only latency a copy adds). */
const flushEveryMs = 5
/** How long one blocking read waits for new frames before it is sent again (with new copies). */
const readBlockMs = 100

const terminalTypes = new Set(["done", "error", "cancelled"])
const isTerminal = (f: Frame) => f.only === undefined && terminalTypes.has(f.type)

/** A frame as the stream keeps it: `[id, type, data]`, and the request it is for when it is one's own. */
type WireFrame = readonly [number, string, Readonly<Record<string, unknown>>, string?]

interface Copy {
  readonly turn: RelayedTurn
  readonly generation: LiveGeneration
  readonly key: string
  /** The id of the last stream entry read. */
  cursor: string
  /** Caught up with what was written before it was made: in the shared blocking read from then on. */
  reading: boolean
  /** The reply's text so far (its outcome carries it). */
  text: string
  ttftMs: number | null
  /** When the owner was first seen missing from the registry (a Redis that restarted has none yet). */
  missingSince: number | undefined
}

function* makeRelay() {
  const config = yield* AppConfig
  const redis = yield* SharedRedis
  const services = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(services)
  const { client, replicaId, leaseMs } = redis
  const channel = redis.key("relay")
  const claimKey = (key: string) => redis.key("claim", key)
  const nameKey = (requestId: string) => redis.key("req", requestId)
  const framesKey = (leader: string) => redis.key("frames", leader)
  /** A running generation's keys outlive its longest run, then its retention. */
  const runningTtl = config.generationMaxMs + finishedRetentionMs
  let closing = false
  let warned = false
  const warn = (what: string) => (error: unknown) => {
    if (warned || closing) return
    warned = true
    runFork(
      Effect.logWarning(`relay: ${what} failed; shared fan-out waits for Redis`, { error: String(error) }),
    )
  }
  const run = (script: RedisScript, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
    redis.evalScript(script, keys, args)

  // ---- The owner's side: frames out, holds in.

  interface Published {
    readonly generation: LiveGeneration
    readonly turn: RelayedTurn
    /** Whether its frames go to Redis: from the first hold of another replica on (none: no cost). */
    mirrored: boolean
    /**
     * When it was seen ended: a thread turn stays followable for the retention of a local one, a
     * completion for its claim's result TTL.
     */
    endedAt: number | undefined
  }
  const published = new Map<RequestId, Published>()
  const pending = new Map<string, Array<string>>()
  const finishing = new Set<string>()
  let flushTimer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    flushTimer = undefined
    if (pending.size === 0) return
    const batch = client.pipeline()
    for (const [key, frames] of pending) {
      batch.xadd(key, "*", "f", `[${frames.join(",")}]`)
      batch.pexpire(key, finishing.has(key) ? finishedRetentionMs : runningTtl)
    }
    pending.clear()
    finishing.clear()
    batch.exec().then(() => {
      warned = false
    }, warn("writing frames"))
  }
  const queueFrame = (key: string, f: Frame) => {
    const wire: WireFrame = f.only === undefined ? [f.id, f.type, f.data] : [f.id, f.type, f.data, f.only]
    const frames = pending.get(key) ?? []
    if (frames.length === 0) pending.set(key, frames)
    frames.push(JSON.stringify(wire))
    if (isTerminal(f)) {
      finishing.add(key)
      if (flushTimer !== undefined) clearTimeout(flushTimer)
      flushTimer = setTimeout(flush, 0)
    } else flushTimer ??= setTimeout(flush, flushEveryMs)
  }

  const register = (requestId: RequestId, turn: RelayedTurn) => {
    client
      .set(nameKey(requestId), JSON.stringify(turn), "PX", runningTtl)
      .catch(warn("registering a request"))
  }

  const publish = (generation: LiveGeneration, turn: RelayedTurn) => {
    published.set(turn.leader, { generation, turn, mirrored: false, endedAt: undefined })
    // A claimed one was registered with its claim, in the same script.
    if (turn.bodyKey === "") register(turn.leader, turn)
  }

  /**
   * Its frames go to Redis from now on: the log so far (a stream written afresh after a Redis
   * restart emptied it), then each frame as it comes. Synchronous, so no frame falls between the
   * two. Until another replica follows it, a generation costs Redis nothing per frame.
   */
  const mirror = (own: Published, afresh: boolean) => {
    const key = framesKey(own.turn.leader)
    if (afresh) {
      pending.delete(key)
      client.del(key).catch(warn("writing frames"))
    }
    for (const f of own.generation.framesAfter(-1)) queueFrame(key, f)
    if (!own.mirrored) {
      own.mirrored = true
      own.generation.mirrorTo((f) => queueFrame(key, f))
    }
  }

  // A Redis that restarted lost every stream and registration: the running ones are written again.
  redis.onChange((up) => {
    if (!up) return
    for (const own of published.values()) {
      register(own.turn.leader, own.turn)
      if (own.mirrored) mirror(own, true)
    }
  })

  const send = (message: Record<string, unknown>) => {
    client.publish(channel, JSON.stringify({ ...message, from: replicaId })).catch(warn("the relay channel"))
  }

  // ---- The copies' side: frames in, holds out.

  const copies = new Map<RequestId, Copy>()
  /** The same copies by their stream's key (what a read answers with). */
  const copiesByKey = new Map<string, Copy>()
  const copyNames = new Map<RequestId, RequestId>()

  const outcomeOf = (copy: Copy, f: Frame): GenerationOutcome => {
    const { turn } = copy
    const data = f.data as Record<string, unknown>
    const timings = {
      ttftMs: copy.ttftMs,
      latencyMs: typeof data.latency_ms === "number" ? data.latency_ms : 0,
      queueWaitMs: 0,
    }
    const identity =
      turn.threadId === null
        ? undefined
        : {
            messageId: (data.message_id ?? turn.generationId) as MessageId,
            threadId: turn.threadId,
            provider: turn.provider,
            model: turn.model,
            requestId: turn.leader,
          }
    const usage = (data.usage ?? null) as Usage | null
    const reply = (status: "complete" | "failed" | "cancelled", errorCode: string | null) =>
      transientReply(
        {
          content: copy.text,
          status,
          usage,
          finishReason: typeof data.finish_reason === "string" ? data.finish_reason : null,
          errorCode,
        },
        identity,
      )
    if (f.type === "done") return { _tag: "Completed", message: reply("complete", null), usage, ...timings }
    if (f.type === "cancelled") return { _tag: "Cancelled", message: reply("cancelled", null), ...timings }
    const code = String(data.code ?? "upstream_error")
    return {
      _tag: "Failed",
      message: reply("failed", code),
      error: new RelayedFailure({
        code,
        message: String(data.message ?? "the reply failed"),
        retryable: data.retryable === true,
      }),
      ...timings,
    }
  }

  /** The copy is over (its terminal frame came, or nobody here listens any more). */
  const dropCopy = (copy: Copy) => {
    if (copies.get(copy.turn.leader) !== copy) return
    copies.delete(copy.turn.leader)
    copiesByKey.delete(copy.key)
    for (const name of copy.generation.names) copyNames.delete(name)
  }

  const endCopy = (copy: Copy, f: Frame) => {
    const outcome = outcomeOf(copy, f)
    const reading = copy.generation.fiber
    copy.generation.relayEnd(outcome, f)
    copy.generation.settled()
    reading?.interruptUnsafe()
    Deferred.doneUnsafe(copy.generation.outcome, Effect.succeed(outcome))
    dropCopy(copy)
  }

  const take = (copy: Copy, entryId: string, fields: ReadonlyArray<string>) => {
    copy.cursor = entryId
    const value = fields[1]
    if (value === undefined || copy.generation.isEnded()) return
    for (const [id, type, data, only] of JSON.parse(value) as ReadonlyArray<WireFrame>) {
      const next = copy.generation.lastEventId() + 1
      // The log written again (after a Redis restart, or a late first follower): what the copy has.
      if (id < next) continue
      if (id > next) {
        // Frames lost (written while Redis was unreachable): the client reconnects to a fresh copy.
        return endCopy(
          copy,
          frame(next, "error", {
            code: "replica_lost",
            message: "part of this reply did not reach this replica; reconnect with Last-Event-ID to resume",
            retryable: true,
          }),
        )
      }
      const f =
        only === undefined
          ? frame(id, type as "delta", data as { text: string })
          : requestFrame(id, type, only)
      if (isTerminal(f)) return endCopy(copy, f)
      if (type === "delta") copy.text += String(data.text ?? "")
      else if (type === "meta" && typeof data.ttft_ms === "number") copy.ttftMs = data.ttft_ms
      copy.generation.relayFrame(f)
    }
  }

  type StreamReply = Array<[string, Array<[string, Array<string>]>]> | null
  const takeAll = (reply: StreamReply) => {
    for (const [key, entries] of reply ?? []) {
      const copy = copiesByKey.get(key)
      if (copy !== undefined) for (const [entryId, fields] of entries) take(copy, entryId, fields)
    }
  }

  // One blocking read for every copy, on a connection of its own (a blocked connection serves
  // nothing else). Plain async code: it hands each frame to its copy synchronously, like an adapter.
  const reader = client.duplicate({ lazyConnect: true, commandTimeout: readBlockMs + 2_000 })
  let wakeReader: (() => void) | undefined
  const readLoop = async () => {
    while (!closing) {
      const reading = [...copies.values()].filter((c) => c.reading)
      if (reading.length === 0 || reader.status !== "ready") {
        await new Promise<void>((resolve) => {
          wakeReader = resolve
          setTimeout(resolve, readBlockMs)
        })
        continue
      }
      try {
        const reply = (await reader.call(
          "XREAD",
          "BLOCK",
          readBlockMs,
          "STREAMS",
          ...reading.map((c) => c.key),
          ...reading.map((c) => c.cursor),
        )) as StreamReply
        takeAll(reply)
      } catch (error) {
        warn("reading frames")(error)
        await new Promise((resolve) => setTimeout(resolve, readBlockMs))
      }
    }
  }
  reader.connect().catch(() => {})
  void readLoop()

  const hold = (copy: Copy) => send({ t: "hold", leader: copy.turn.leader, owner: copy.turn.owner })

  const follow = Effect.fn("GenerationRelay.follow")(function* (turn: RelayedTurn) {
    const known = copies.get(turn.leader)
    if (known !== undefined && !known.generation.isEnded()) return known.generation
    const generation = new LiveGeneration(
      {
        id: turn.generationId,
        org: turn.org,
        threadId: turn.threadId,
        provider: turn.provider,
        model: turn.model,
        requestId: turn.leader,
      },
      config.reconnectGraceMs === 0
        ? undefined
        : (after) => void setTimeout(after, config.reconnectGraceMs).unref(),
    ).asRelayCopy()
    const copy: Copy = {
      turn,
      generation,
      key: framesKey(turn.leader),
      cursor: "0",
      reading: false,
      text: "",
      ttftMs: null,
      missingSince: undefined,
    }
    copies.set(turn.leader, copy)
    copiesByKey.set(copy.key, copy)
    // Nobody left on the copy here: the owner is told at once (it may stop the upstream call).
    generation.fiber = yield* Effect.never.pipe(
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          if (generation.isEnded()) return
          send({ t: "release", leader: turn.leader })
          endCopy(copy, frame(generation.lastEventId() + 1, "cancelled", {}))
        }),
      ),
      Effect.forkDetach,
    )
    hold(copy)
    // What was written before it was made, then the shared read from there.
    const before = yield* Effect.tryPromise(
      () => client.call("XREAD", "COUNT", 100_000, "STREAMS", copy.key, "0") as Promise<StreamReply>,
    ).pipe(Effect.orElseSucceed(() => null))
    takeAll(before)
    copy.reading = true
    wakeReader?.()
    return generation
  })

  const lookup = Effect.fn("GenerationRelay.lookup")(function* (org: OrgId, requestId: RequestId) {
    const value = yield* Effect.tryPromise(() => client.get(nameKey(requestId))).pipe(
      Effect.orElseSucceed(() => null),
    )
    if (value === null) return undefined
    const turn = JSON.parse(value) as RelayedTurn
    // Another org's request is not found, and neither is one this replica runs (it knows those).
    return turn.org === org && turn.owner !== replicaId ? turn : undefined
  })

  // ---- The channel: holds, releases and cancels from the other replicas.

  let cancelHandler: CancelHandler = () => {}
  const subscriber = client.duplicate({ lazyConnect: true })
  subscriber.on("message", (_channel: string, raw: string) => {
    const message = JSON.parse(raw) as {
      t: string
      from: string
      leader: RequestId
      request?: RequestId
      org?: OrgId
      scope?: CancelScope
      owner?: string
    }
    if (message.from === replicaId) return
    const own = published.get(message.leader)
    if (message.t === "hold" && own !== undefined) {
      if (!own.mirrored) mirror(own, false)
      own.generation.holdRemote(message.from, Date.now() + leaseMs)
    } else if (message.t === "hold" && message.owner === replicaId) {
      // Held for a generation this replica no longer has (its retention is over): its copies end,
      // and their reconnects find the stored reply.
      send({ t: "gone", leader: message.leader })
    } else if (message.t === "gone") {
      const copy = copies.get(message.leader)
      if (copy === undefined) return
      for (const name of copy.generation.names) client.del(nameKey(name)).catch(warn("forgetting a request"))
      endCopy(
        copy,
        frame(copy.generation.lastEventId() + 1, "error", {
          code: "replica_lost",
          message: "this reply is no longer live; reconnect to get it from the store",
          retryable: true,
        }),
      )
    } else if (message.t === "release") own?.generation.releaseRemote(message.from)
    else if (message.t === "cancel" && message.org !== undefined && message.request !== undefined) {
      cancelHandler(message.org, message.request, message.leader, message.scope ?? "request")
      const copy = copies.get(message.leader)
      if (copy === undefined) return
      if (message.scope === "generation") return
      runFork(copy.generation.cancelRequest(message.request))
    }
  })
  subscriber.on("ready", () => void subscriber.subscribe(channel).catch(() => {}))
  subscriber.connect().catch(() => {})

  // ---- Every third of the lease: holds renewed, lapsed holds dropped, lost owners noticed.

  const tick = async () => {
    const now = Date.now()
    for (const [leader, own] of published) {
      if (!own.generation.isEnded()) own.generation.expireRemote(now)
      else if (own.endedAt === undefined) own.endedAt = now
      else if (
        now - own.endedAt >
        (own.turn.threadId === null ? config.coalesceResultTtlMs : finishedRetentionMs)
      ) {
        // Not live any more: its names lead to the store from now on.
        published.delete(leader)
        for (const name of own.generation.names) client.del(nameKey(name)).catch(warn("forgetting a request"))
      }
    }
    const live = [...copies.values()].filter((c) => !c.generation.isEnded())
    for (const copy of live) {
      hold(copy)
      copy.generation.keepalive(performance.now(), config.sseKeepaliveMs)
    }
    if (live.length === 0 || !redis.isUp()) return
    const owners = [...new Set(live.map((c) => c.turn.owner))]
    const answer = (await run(leasesScript, [redis.replicasKey], owners).catch(() => undefined)) as
      | Array<number | string | null>
      | undefined
    if (answer === undefined) return
    const redisNow = Number(answer[0])
    const upFor = now - redis.status().since
    owners.forEach((owner, i) => {
      const lease = answer[i + 1]
      for (const copy of live.filter((c) => c.turn.owner === owner)) {
        if (lease !== null && lease !== undefined && Number(lease) >= redisNow) {
          copy.missingSince = undefined
          continue
        }
        // Missing from the registry right after Redis came back is a registry not refilled yet.
        copy.missingSince ??= now
        if (lease === null && (upFor < leaseMs || now - copy.missingSince < leaseMs)) continue
        endCopy(
          copy,
          frame(copy.generation.lastEventId() + 1, "error", {
            code: "replica_lost",
            message: `the replica running this reply (${owner}) stopped; its text so far is stored, try again`,
            retryable: true,
          }),
        )
      }
    })
  }
  const ticker = setInterval(() => void tick(), Math.max(100, Math.floor(leaseMs / 3)))
  ticker.unref()

  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      closing = true
      clearInterval(ticker)
      if (flushTimer !== undefined) clearTimeout(flushTimer)
      flush()
      wakeReader?.()
      reader.disconnect()
      subscriber.disconnect()
    }),
  )

  return GenerationRelay.of({
    enabled: true,
    claim: (key, turn) =>
      Effect.tryPromise(() =>
        run(claimScript, [claimKey(key), nameKey(turn.leader)], [JSON.stringify(turn), runningTtl]),
      ).pipe(
        Effect.map((held) => (typeof held === "string" ? (JSON.parse(held) as RelayedTurn) : undefined)),
        // Redis down: this replica coalesces on its own until it is back.
        Effect.orElseSucceed(() => undefined),
        Effect.map((held) => (held === undefined || held.leader === turn.leader ? undefined : held)),
      ),
    settleClaim: (key, leader, end) => {
      const ttl =
        end === "Completed" ? config.coalesceResultTtlMs : end === "Failed" ? config.coalesceErrorTtlMs : 0
      run(settleScript, [claimKey(key)], [leader, ttl]).catch(warn("settling a claim"))
    },
    publish,
    name: (requestId, generation) => {
      const leader = generation.names[0]!
      const copy = copies.get(leader)
      if (copy !== undefined && copy.generation === generation) {
        register(requestId, copy.turn)
        generation.names.push(requestId)
        copyNames.set(requestId, leader)
        return
      }
      const own = published.get(leader)
      if (own !== undefined && own.generation === generation) register(requestId, own.turn)
    },
    isCopy: (generation) => copies.get(generation.names[0]!)?.generation === generation,
    lookup,
    follow,
    copyOf: (requestId) => {
      const leader = copyNames.get(requestId) ?? requestId
      return copies.get(leader)?.generation
    },
    cancel: (org, requestId, leader, scope) => send({ t: "cancel", org, request: requestId, leader, scope }),
    onCancel: (handler) => {
      cancelHandler = handler
    },
    status: () => ({
      published: published.size,
      mirrored: [...published.values()].filter((own) => own.mirrored).length,
      copies: copies.size,
    }),
  })
}
