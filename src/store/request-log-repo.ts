import { Array as Arr, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"

/** One finished request, as the request log keeps it. */
export interface RequestLogEntry {
  readonly request_id: string
  readonly org_id: string
  readonly thread_id: string | null
  readonly provider: string | null
  readonly model: string | null
  readonly coalesce: string
  readonly status: string
  readonly error_code: string | null
  readonly queue_wait_ms: number | null
  readonly ttft_ms: number | null
  readonly latency_ms: number | null
  readonly input_tokens: number | null
  readonly output_tokens: number | null
}

interface RequestLogRow extends RequestLogEntry {
  readonly created_at: Date | string
}

/** The request log table. Written in batches by the telemetry recorder, never per token. */
export class RequestLogRepo extends Context.Service<
  RequestLogRepo,
  {
    readonly insertMany: (entries: ReadonlyArray<RequestLogEntry>) => Effect.Effect<void>
    readonly recent: (limit: number) => Effect.Effect<ReadonlyArray<RequestLogRow>>
  }
>()("dac/store/RequestLogRepo") {
  static readonly layer = Layer.effect(
    RequestLogRepo,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient

      const insertMany = Effect.fn("RequestLogRepo.insertMany")(function* (
        entries: ReadonlyArray<RequestLogEntry>,
      ) {
        if (!Arr.isReadonlyArrayNonEmpty(entries)) return
        yield* sql`INSERT INTO request_log ${sql.insert(Arr.map(entries, (entry) => ({ ...entry })))} ON CONFLICT DO NOTHING`
      }, Effect.orDie)

      const recent = Effect.fn("RequestLogRepo.recent")(function* (limit: number) {
        return yield* sql<RequestLogRow>`SELECT * FROM request_log ORDER BY created_at DESC LIMIT ${limit}`
      }, Effect.orDie)

      return RequestLogRepo.of({ insertMany, recent })
    }),
  )
}
