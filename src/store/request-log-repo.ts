import { Array as Arr, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { StoreUnavailable } from "../domain/errors.ts"
import { orStoreUnavailable } from "./store-errors.ts"

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

/** The columns a batch writes (`created_at` takes its default). */
const columns = [
  "request_id",
  "org_id",
  "thread_id",
  "provider",
  "model",
  '"coalesce"',
  "status",
  "error_code",
  "queue_wait_ms",
  "ttft_ms",
  "latency_ms",
  "input_tokens",
  "output_tokens",
].join(", ")

interface RequestLogRow extends RequestLogEntry {
  readonly created_at: Date | string
}

/** The request log table. Written in batches by the telemetry recorder, never per token. */
export class RequestLogRepo extends Context.Service<
  RequestLogRepo,
  {
    readonly insertMany: (entries: ReadonlyArray<RequestLogEntry>) => Effect.Effect<void, StoreUnavailable>
    readonly recent: (limit: number) => Effect.Effect<ReadonlyArray<RequestLogRow>, StoreUnavailable>
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
        // The batch travels as one JSON parameter: a multi-row VALUES of 13 parameters a row is a
        // statement of thousands of parameters to build, send and parse every half second.
        yield* sql`
          INSERT INTO request_log (${sql.unsafe(columns)})
          SELECT ${sql.unsafe(columns)} FROM json_populate_recordset(NULL::request_log, ${JSON.stringify(entries)}::json)
          ON CONFLICT DO NOTHING`
      }, orStoreUnavailable("RequestLogRepo.insertMany"))

      const recent = Effect.fn("RequestLogRepo.recent")(function* (limit: number) {
        return yield* sql<RequestLogRow>`SELECT * FROM request_log ORDER BY created_at DESC LIMIT ${limit}`
      }, orStoreUnavailable("RequestLogRepo.recent"))

      return RequestLogRepo.of({ insertMany, recent })
    }),
  )
}
