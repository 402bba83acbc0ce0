import { createHash } from "node:crypto"
import { Context, Deferred, Effect, Layer } from "effect"
import { AppConfig } from "../config.ts"
import type { ChatRequest } from "../domain/chat.ts"
import type { MessageId, OrgId, ThreadId } from "../domain/ids.ts"
import type { ChatMessage } from "../providers/provider.ts"
import type { InsertedTurn } from "../store/messages-repo.ts"
import { clockDeadlines } from "./deadlines.ts"
import type { Generation } from "./generations.ts"
import type { InsertError } from "./thread-actors.ts"

/** What followers share with the leader: its stored messages (a thread turn's), its place, and its generation. */
export interface LeaderTurn {
  /** The turn's messages as they are stored; none for a stateless completion. */
  readonly inserted: Deferred.Deferred<InsertedTurn, InsertError> | undefined
  /** How many turns of its thread ran or waited before it when it was queued. */
  readonly queuePosition: number
  readonly generation: Generation
}

/** A key's leader: pending until its turn is stored and its generation started (or it failed to). */
export interface Lead<E> {
  readonly turn: Deferred.Deferred<LeaderTurn, E>
  /** The coalescing key of the body, to tell a reused Idempotency-Key with another body. */
  readonly bodyKey: string
}

export type Claim<E> =
  | { readonly _tag: "Leader"; readonly lead: Lead<E> }
  | { readonly _tag: "Follower"; readonly lead: Lead<E> }

/**
 * A key as the coalescer keeps it, for the whole result TTL: the org in clear (keys of two orgs
 * never match) and a SHA-256 of the rest, so a cached reply keeps some 60 bytes of key however long
 * the conversation or message it was asked with (a JSON key kept every prompt twice over).
 */
const digestKey = (org: OrgId, parts: ReadonlyArray<unknown>) =>
  `${org}:${createHash("sha256").update(JSON.stringify(parts)).digest("base64url")}`

/** What the reply depends on besides the conversation: where it is asked, and how it is sampled. */
const parametersOf = (body: ChatRequest) => [
  body.provider,
  body.model,
  body.temperature ?? null,
  body.max_tokens ?? null,
  body.top_p ?? null,
  body.stop ?? null,
]

/**
 * The key of a thread turn: who asks, in which thread, after which complete reply, what, of which
 * model and with which parameters. The last reply stands for the history: identical sends while a
 * reply runs (a double submit, a retry) share one turn, while the same words sent again after the
 * reply ("continue", "yes") are a new turn. (After a failed turn the key is the same: its failure
 * is shared for the error TTL.)
 */
export const coalesceKey = (
  org: OrgId,
  threadId: ThreadId | null,
  lastSettledId: MessageId | null,
  body: ChatRequest,
  /**
   * What the turn sends when it is more than `body.content`'s text (parts with images, tool results,
   * tools): an Idempotency-Key reused with other parts or results is another body.
   */
  turn: unknown = body.content,
) => digestKey(org, [threadId, lastSettledId, turn, ...parametersOf(body)])

/** The key of a stateless completion: the whole conversation and the parameters. */
export const conversationKey = (org: OrgId, conversation: ReadonlyArray<ChatMessage>, body: ChatRequest) =>
  digestKey(org, [conversation, ...parametersOf(body)])

/**
 * Leader/follower bookkeeping. `claim` is synchronous, so of N identical requests arriving together
 * exactly one leads. A led turn stays claimable while it runs, then for the result TTL after it
 * completed (a duplicate gets the same turn) or the error TTL after it failed (the failure is
 * shared, not retried into a failing upstream); a cancelled one is forgotten at once.
 */
export class Coalescer extends Context.Service<
  Coalescer,
  {
    readonly enabled: boolean
    readonly streamFanout: boolean
    readonly claim: <E>(key: string, bodyKey: string) => Claim<E>
    /** The leader could not start (bad thread, …): forget the key so the next request leads. */
    readonly abandon: (key: string) => void
    /** The leader's generation ended: keep the key for the TTL that fits the outcome. */
    readonly settle: (key: string, outcome: "Completed" | "Failed" | "Cancelled") => void
  }
>()("dac/engine/Coalescer") {
  static readonly layer = Layer.effect(
    Coalescer,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const deadlines = yield* clockDeadlines
      // Any E: the map holds leads of one error type per caller (Turns), erased here.
      const leads = new Map<string, Lead<unknown>>()

      const claim = <E>(key: string, bodyKey: string): Claim<E> => {
        const existing = leads.get(key) as Lead<E> | undefined
        if (existing) return { _tag: "Follower", lead: existing }
        const lead: Lead<E> = { turn: Deferred.makeUnsafe<LeaderTurn, E>(), bodyKey }
        leads.set(key, lead as Lead<unknown>)
        return { _tag: "Leader", lead }
      }

      const forgetAfter = (key: string, ms: number) => {
        const lead = leads.get(key)
        deadlines.after(ms, () => {
          // Only the lead that settled: a key forgotten and claimed again belongs to its new leader.
          if (leads.get(key) === lead) leads.delete(key)
        })
      }

      return Coalescer.of({
        enabled: config.coalesceEnabled,
        streamFanout: config.streamFanoutEnabled,
        claim,
        abandon: (key) => {
          leads.delete(key)
        },
        settle: (key, outcome) =>
          forgetAfter(
            key,
            outcome === "Completed"
              ? config.coalesceResultTtlMs
              : outcome === "Failed"
                ? config.coalesceErrorTtlMs
                : 0,
          ),
      })
    }),
  )
}
