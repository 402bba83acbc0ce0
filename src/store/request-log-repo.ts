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

/** One org's requests and tokens on one UTC day, for one provider and model. */
export interface UsageRow {
  /** `YYYY-MM-DD`, UTC. */
  readonly day: string
  readonly provider: string | null
  readonly model: string | null
  readonly requests: number
  readonly input_tokens: number
  readonly output_tokens: number
}

interface RequestLogRow extends RequestLogEntry {
  readonly created_at: Date | string
}

/** The request log table. Written in batches by the telemetry recorder, never per token. */
export class RequestLogRepo extends Context.Service<
  RequestLogRepo,
  {
    readonly insertMany: (entries: ReadonlyArray<RequestLogEntry>) => Effect.Effect<void, StoreUnavailable>
    readonly recent: (limit: number) => Effect.Effect<ReadonlyArray<RequestLogRow>, StoreUnavailable>
    /**
     * The org's usage over the last `days` UTC days (today included), newest day first. Requests
     * the pacer or a key limit refused (`rejected`) are not counted: nothing ran for them.
     */
    readonly usageByDay: (
      org: string,
      days: number,
    ) => Effect.Effect<ReadonlyArray<UsageRow>, StoreUnavailable>
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

      const usageByDay = Effect.fn("RequestLogRepo.usageByDay")(function* (org: string, days: number) {
        // Sums come back as bigint (text on the wire): numbers here, exact far past any real count.
        const rows = yield* sql<{
          day: string
          provider: string | null
          model: string | null
          requests: string | number
          input_tokens: string | number
          output_tokens: string | number
        }>`
          SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, provider, model,
                 count(*) AS requests,
                 coalesce(sum(input_tokens), 0) AS input_tokens,
                 coalesce(sum(output_tokens), 0) AS output_tokens
          FROM request_log
          WHERE org_id = ${org}
            AND status <> 'rejected'
            AND created_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => ${days - 1})) AT TIME ZONE 'UTC'
          GROUP BY 1, 2, 3
          ORDER BY 1 DESC, 2, 3`
        return rows.map(
          (row): UsageRow => ({
            day: row.day,
            provider: row.provider,
            model: row.model,
            requests: Number(row.requests),
            input_tokens: Number(row.input_tokens),
            output_tokens: Number(row.output_tokens),
          }),
        )
      }, orStoreUnavailable("RequestLogRepo.usageByDay"))

      return RequestLogRepo.of({ insertMany, recent, usageByDay })
    }),
  )
}
