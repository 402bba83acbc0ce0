import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/** Migrations, applied in order at start-up; never edit one that has shipped, add the next. */
export const migrations = {
  "0001_threads_and_messages": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE threads (
        id uuid PRIMARY KEY,
        org_id text NOT NULL,
        title text,
        created_at timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`CREATE INDEX threads_org_created ON threads (org_id, created_at DESC)`
    yield* sql`
      CREATE TABLE messages (
        id uuid PRIMARY KEY,
        seq bigint GENERATED ALWAYS AS IDENTITY,
        thread_id uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
        org_id text NOT NULL,
        role text NOT NULL,
        content text NOT NULL,
        status text NOT NULL,
        provider text,
        model text,
        usage jsonb,
        finish_reason text,
        error_code text,
        request_id uuid,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`CREATE INDEX messages_thread_seq ON messages (thread_id, seq)`
    yield* sql`CREATE INDEX messages_request ON messages (request_id)`
    // Only unfinished rows are indexed: the crash sweep reads exactly these.
    yield* sql`CREATE INDEX messages_unfinished ON messages (status) WHERE status IN ('pending', 'streaming')`
  }),
  "0002_request_log": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE request_log (
        request_id uuid PRIMARY KEY,
        org_id text NOT NULL,
        thread_id uuid,
        provider text,
        model text,
        coalesce text NOT NULL,
        status text NOT NULL,
        error_code text,
        queue_wait_ms double precision,
        ttft_ms double precision,
        latency_ms double precision,
        input_tokens integer,
        output_tokens integer,
        created_at timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`CREATE INDEX request_log_created ON request_log (created_at DESC)`
  }),
  "0003_api_keys": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    // The secret is never stored: only its SHA-256 (a 256-bit random secret needs no slow hash).
    yield* sql`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY,
        org_id text NOT NULL,
        name text,
        prefix text NOT NULL,
        secret_hash text NOT NULL UNIQUE,
        limits jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz
      )`
    yield* sql`CREATE INDEX api_keys_org_created ON api_keys (org_id, created_at DESC)`
  }),
  // `GET /api/usage`: one org's rows over a range of days, without reading every org's.
  "0004_request_log_org_created": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE INDEX request_log_org_created ON request_log (org_id, created_at DESC)`
  }),
  // Replies stored as they grow, under a lease: `last_event_id` is the reply stream's id of the last
  // delta in `content`; `owner` the process that runs the reply and `lease_until` how long it may be
  // trusted to, renewed while it runs. The sweep marks only replies whose lease ran out.
  "0005_reply_progress_and_lease": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE messages ADD COLUMN last_event_id integer`
    yield* sql`ALTER TABLE messages ADD COLUMN owner text`
    yield* sql`ALTER TABLE messages ADD COLUMN lease_until timestamptz`
  }),
  // Messages with structure: an assistant reply's tool calls (DAC's own shape, with what a provider
  // needs back such as Gemini's `thoughtSignature`), the call a `tool` message answers, and a user
  // message's content parts (text and images) when it was sent as parts. `content` keeps the text.
  "0006_structured_messages": Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE messages ADD COLUMN tool_calls jsonb`
    yield* sql`ALTER TABLE messages ADD COLUMN tool_call_id text`
    yield* sql`ALTER TABLE messages ADD COLUMN parts jsonb`
  }),
}
