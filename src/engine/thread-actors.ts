import { Context, Deferred, Effect, Exit, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"
import type { ToolCall } from "../domain/content.ts"
import { StoreUnavailable, ThreadNotFound } from "../domain/errors.ts"
import type { MessageId, OrgId, RequestId, ThreadId } from "../domain/ids.ts"
import type { ChatMessage } from "../providers/provider.ts"
import { type InsertedTurn, type LoadedThread, MessagesRepo } from "../store/messages-repo.ts"
import { conversationMessage } from "../store/rows.ts"
import { clockDeadlines } from "./deadlines.ts"
import { upstreamConversation } from "./tool-calls.ts"

/**
 * What a turn stores: its messages (the user's, or tool results), where it is asked, and the ids of
 * its first message and of its reply.
 */
export interface TurnToStore {
  readonly requestId: RequestId
  readonly messages: ReadonlyArray<ChatMessage>
  readonly provider: string
  readonly model: string
  readonly userMessageId: MessageId
  readonly assistantMessageId: MessageId
  /** Its coalescing key, when identical sends may share it (kept as the thread's last completed turn). */
  readonly key?: string | undefined
}

/** The thread's last completed turn: a duplicate of it arriving late still finds it. */
export interface CompletedTurn {
  /** The reply it was asked after (its position). */
  readonly positionBefore: MessageId | null
  readonly key: string
  /** `performance.now()` when it completed. */
  readonly at: number
}

/** How a turn ended, as its thread keeps it: whether it was stored, and the reply when it completed. */
export interface SettledTurn {
  readonly stored: boolean
  /** The reply when it completed, its tool calls with it (only complete replies join the conversation). */
  readonly completeReply: {
    readonly content: string
    readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  } | null
}

export type InsertError = ThreadNotFound | StoreUnavailable

/** One turn's place on its thread. */
export interface QueuedTurn {
  readonly threadId: ThreadId
  /** Done once every turn before it on the thread has settled. */
  readonly ready: Effect.Effect<void>
  /** The conversation to send upstream (call it once `ready` is done): the thread so far, then this turn's message. */
  readonly history: () => ReadonlyArray<ChatMessage>
  /** The stored turn: inserted in arrival order, while the turns before it may still run. */
  readonly inserted: Deferred.Deferred<InsertedTurn, InsertError>
  /**
   * Calls `f` with how the insert ended, synchronously as it does (at once when it has): for a run
   * that goes upstream meanwhile, with no fiber to watch it.
   */
  readonly onInserted: (f: (exit: Exit.Exit<InsertedTurn, InsertError>) => void) => void
  /** Called once when the turn settled: the next turn goes on. */
  readonly settle: (turn: SettledTurn) => void
  /** The thread's last complete reply as this actor knows it. */
  readonly lastSettledId: () => MessageId | null
  /**
   * Another replica ran turns of the thread since this actor read it (REDIS_URL): the thread as
   * the store has it now, before this turn, replaces what the actor had.
   */
  readonly resync: (before: LoadedThread) => void
}

/** A thread's actor, as a turn enters it. */
export interface ThreadActor {
  readonly org: OrgId
  readonly threadId: ThreadId
  /**
   * The thread's last complete reply: where a new turn is asked from (part of its coalescing key).
   * A failed or cancelled turn leaves it, so a retry of the same words is the same request.
   */
  readonly lastSettledId: () => MessageId | null
  /** The last turn that completed, with a coalescing key (none after a failed or cancelled one). */
  readonly lastCompleted: () => CompletedTurn | undefined
  /** The settled conversation, as stored (what a tool-result turn is checked against). */
  readonly conversation: () => ReadonlyArray<ChatMessage>
  /** How many turns run or wait on the thread now (0: a new turn runs at once). */
  readonly turnsInFlight: () => number
  /** Takes the turn's place: after every turn queued before it. Synchronous: arrival order is call order. */
  readonly enqueue: (turn: TurnToStore) => QueuedTurn
}

class Actor implements ThreadActor {
  readonly org: OrgId
  readonly threadId: ThreadId
  history: Array<ChatMessage>
  settledId: MessageId | null
  completed: CompletedTurn | undefined
  /** Turns queued or running. */
  inFlight = 0
  /** Bumped by every turn: an idle timer set before a later turn does nothing. */
  epoch = 0
  /** The last queued turn's settle and insert: the next turn waits for them. */
  private lastSettled: Deferred.Deferred<void> | undefined
  private lastInserted: Deferred.Deferred<InsertedTurn, InsertError> | undefined
  private readonly insert: (
    turn: TurnToStore,
    after: Deferred.Deferred<InsertedTurn, InsertError> | undefined,
    into: Deferred.Deferred<InsertedTurn, InsertError>,
    done: (exit: Exit.Exit<InsertedTurn, InsertError>) => void,
  ) => void
  private readonly idle: (actor: Actor) => void

  constructor(
    org: OrgId,
    threadId: ThreadId,
    loaded: LoadedThread,
    insert: Actor["insert"],
    idle: (actor: Actor) => void,
  ) {
    this.org = org
    this.threadId = threadId
    this.history = [...loaded.history]
    this.settledId = loaded.lastSettledId
    this.insert = insert
    this.idle = idle
  }

  lastSettledId() {
    return this.settledId
  }

  turnsInFlight() {
    return this.inFlight
  }

  conversation() {
    return this.history
  }

  lastCompleted() {
    return this.completed
  }

  enqueue(turn: TurnToStore): QueuedTurn {
    this.inFlight++
    this.epoch++
    const before = this.lastSettled
    const positionBefore = this.settledId
    const settled = Deferred.makeUnsafe<void>()
    const inserted = Deferred.makeUnsafe<InsertedTurn, InsertError>()
    let insertExit: Exit.Exit<InsertedTurn, InsertError> | undefined
    let watchers: Array<(exit: Exit.Exit<InsertedTurn, InsertError>) => void> = []
    this.insert(turn, this.lastInserted, inserted, (exit) => {
      insertExit = exit
      for (const watch of watchers) watch(exit)
      watchers = []
    })
    this.lastSettled = settled
    this.lastInserted = inserted
    let done = false
    return {
      threadId: this.threadId,
      ready: before === undefined ? Effect.void : Deferred.await(before),
      history: () => upstreamConversation([...this.history, ...turn.messages]),
      inserted,
      onInserted: (f) => {
        if (insertExit !== undefined) f(insertExit)
        else watchers.push(f)
      },
      lastSettledId: () => this.settledId,
      resync: (before) => {
        this.history = [...before.history]
        this.settledId = before.lastSettledId
      },
      settle: ({ stored, completeReply }) => {
        if (done) return
        done = true
        if (stored) {
          // As the store has it (and loads it again: store/rows.ts): the question (or the tool
          // results) always, the reply, with its tool calls, only when it completed.
          this.history.push(...turn.messages)
          if (completeReply !== null) {
            this.history.push(
              conversationMessage("assistant", completeReply.content, undefined, completeReply.toolCalls),
            )
            this.settledId = turn.assistantMessageId
          }
        }
        this.completed =
          stored && completeReply !== null && turn.key !== undefined
            ? { positionBefore, key: turn.key, at: performance.now() }
            : undefined
        this.inFlight--
        if (this.lastSettled === settled) {
          this.lastSettled = undefined
          this.lastInserted = undefined
        }
        Deferred.doneUnsafe(settled, Exit.void)
        if (this.inFlight === 0) this.idle(this)
      },
    }
  }
}

/**
 * One actor per thread in use: turns on a thread run one at a time, in arrival order, each sent
 * with the replies before it. The actor keeps the thread's conversation in memory (loaded once,
 * or empty for a thread this process created), so a turn goes upstream without reading the store;
 * its messages are inserted in arrival order while it starts. An actor with no turn is dropped
 * after `THREAD_IDLE_MS`.
 */
export class ThreadActors extends Context.Service<
  ThreadActors,
  {
    /** A thread just created (empty): its actor needs no load. */
    readonly created: (org: OrgId, threadId: ThreadId) => void
    /** The thread's actor, loaded from the store when it has none; the thread must be the org's. */
    readonly enter: (org: OrgId, threadId: ThreadId) => Effect.Effect<ThreadActor, InsertError>
    /**
     * Drops the thread's actor when no turn of its runs here (another replica added a turn: the next
     * one here reloads the thread).
     */
    readonly forget: (threadId: ThreadId) => void
    /** How many actors are in memory. */
    readonly size: () => number
  }
>()("dac/engine/ThreadActors") {
  static readonly layer = Layer.effect(
    ThreadActors,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const messages = yield* MessagesRepo
      const scope = yield* Effect.scope
      // The insert is forked where a turn is queued, synchronously (arrival order is call order).
      const forkInLayer = Effect.runForkWith(yield* Effect.context<never>())
      const actors = new Map<ThreadId, Actor>()
      /** Loads under way, by org and thread: concurrent first turns share one. */
      const loading = new Map<string, Deferred.Deferred<Option.Option<Actor>, StoreUnavailable>>()
      const deadlines = yield* clockDeadlines

      const insert = (
        turn: TurnToStore,
        org: OrgId,
        threadId: ThreadId,
        after: Deferred.Deferred<InsertedTurn, InsertError> | undefined,
        into: Deferred.Deferred<InsertedTurn, InsertError>,
        done: (exit: Exit.Exit<InsertedTurn, InsertError>) => void,
      ) => {
        const store = messages
          .insertTurn({ org, threadId, ...turn, owner: config.replicaId, leaseMs: config.replyLeaseMs })
          .pipe(
            // A bug here is logged, and the turn answered as the store's failure (retryable).
            Effect.catchDefect((defect) =>
              Effect.logError("storing a turn failed with a defect", defect).pipe(
                Effect.andThen(
                  Effect.fail(new StoreUnavailable({ message: "the turn could not be stored; try again" })),
                ),
              ),
            ),
          )
        const ordered =
          after === undefined ? store : Effect.andThen(Effect.exit(Deferred.await(after)), store)
        // One fiber, not tied to the request (a hang-up never leaves half a turn); the store's own
        // deadline bounds it.
        forkInLayer(
          ordered.pipe(
            Effect.exit,
            Effect.flatMap((exit) =>
              Effect.sync(() => {
                Deferred.doneUnsafe(into, exit)
                done(exit)
              }),
            ),
          ),
        )
      }

      const idle = (actor: Actor) => {
        const epoch = actor.epoch
        deadlines.after(config.threadIdleMs, () => {
          if (actor.inFlight === 0 && actor.epoch === epoch && actors.get(actor.threadId) === actor) {
            actors.delete(actor.threadId)
          }
        })
      }

      const make = (org: OrgId, threadId: ThreadId, loaded: LoadedThread) => {
        const actor = new Actor(
          org,
          threadId,
          loaded,
          (turn, after, into, done) => insert(turn, org, threadId, after, into, done),
          idle,
        )
        actors.set(threadId, actor)
        idle(actor)
        return actor
      }

      const notFound = (threadId: ThreadId) => new ThreadNotFound({ message: `thread ${threadId} not found` })

      const enter = Effect.fn("ThreadActors.enter")(function* (org: OrgId, threadId: ThreadId) {
        const known = actors.get(threadId)
        // Another org's thread is not found, the same as one that does not exist.
        if (known !== undefined) return known.org === org ? known : yield* notFound(threadId)
        const loadKey = `${org}:${threadId}`
        let load = loading.get(loadKey)
        if (load === undefined) {
          const pending = Deferred.makeUnsafe<Option.Option<Actor>, StoreUnavailable>()
          load = pending
          loading.set(loadKey, pending)
          // Concurrent first turns share one load; it runs in the layer's scope (a hang-up cannot cut it).
          yield* messages.loadThread(org, threadId).pipe(
            Effect.map(Option.map((loaded) => actors.get(threadId) ?? make(org, threadId, loaded))),
            Effect.exit,
            Effect.flatMap((exit) => {
              loading.delete(loadKey)
              return Deferred.done(pending, exit)
            }),
            Effect.forkIn(scope, { startImmediately: true }),
          )
        }
        const actor = yield* Deferred.await(load)
        // Not there, or (made meanwhile by another org's load) not this org's.
        if (Option.isNone(actor) || actor.value.org !== org) return yield* notFound(threadId)
        return actor.value
      })

      return ThreadActors.of({
        created: (org, threadId) => {
          make(org, threadId, { history: [], lastSettledId: null })
        },
        enter,
        forget: (threadId) => {
          if (actors.get(threadId)?.inFlight === 0) actors.delete(threadId)
        },
        size: () => actors.size,
      })
    }),
  )
}
