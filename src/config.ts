import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import {
  Config,
  ConfigProvider,
  Context,
  Effect,
  Layer,
  type LogLevel,
  Option,
  Redacted,
  Schema,
} from "effect"

/** The providers DAC knows; `P` in the `<P>_*` variables is the upper-cased name. */
export const providerNames = ["openai", "anthropic", "gemini", "perplexity", "openrouter", "mock"] as const
export type ProviderName = (typeof providerNames)[number]

export const isProviderName = (name: string): name is ProviderName =>
  (providerNames as ReadonlyArray<string>).includes(name)

export interface ProviderSettings {
  readonly name: ProviderName
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly baseUrl: string
  /** Token bucket refill per second and capacity. */
  readonly rps: number
  readonly burst: number
  readonly concurrency: number
  readonly maxQueue: number
  /** `<P>_MODELS`: the models `GET /v1/models` lists for it (a list, not a restriction). */
  readonly models?: ReadonlyArray<string> | undefined
}

export interface UpstreamTimeouts {
  readonly connectMs: number
  readonly firstByteMs: number
  readonly idleMs: number
  /** Attempts before the first byte (1 = no retry) and the cap on one retry's wait. */
  readonly maxAttempts: number
  readonly maxRetryDelayMs: number
}

export interface MockSettings {
  readonly ttftMs: number
  readonly tokens: number
  readonly tokenIntervalMs: number
}

/** The standard OpenTelemetry variables DAC reads; no endpoint, no export (and no cost). */
export interface OtelSettings {
  readonly endpoint: Option.Option<string>
  readonly protocol: "http/protobuf" | "http/json"
  readonly serviceName: string
  readonly traceDelayMs: number
  readonly metricIntervalMs: number
}

/** Where a configured model alias routes (`MODEL_ALIASES`). */
export interface ModelTarget {
  readonly provider: ProviderName
  readonly model: string
}

/**
 * When DAC asks a provider for a stream although the client waits for the whole reply:
 * - `always`: every call streams (TTFT measured, partial text kept, streaming followers fed live);
 * - `threads`: a thread turn streams (its reply can be re-joined and is stored as it grows); a
 *   stateless `/v1/chat/completions` call streams exactly when its client does, as OpenAI would;
 * - `requested`: only a client that streams gets an upstream stream.
 * One body costs DAC and the provider one read instead of one per token.
 */
export const UpstreamStreaming = Schema.Literals(["always", "threads", "requested"])
export type UpstreamStreaming = typeof UpstreamStreaming.Type

/**
 * Where a request's org comes from: `keys` (the default) from its API key alone; `header` from
 * `x-org-id`, for a deployment behind a trusted front end that sets it (no key is asked for).
 */
export const AuthMode = Schema.Literals(["keys", "header"])
export type AuthMode = typeof AuthMode.Type

export interface AppConfigShape {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  readonly databasePoolSize: number
  readonly dataDir: string
  readonly logLevel: LogLevel.LogLevel
  /** `AUTH_MODE`: `keys` (default) or `header`. */
  readonly authMode: AuthMode
  /** `ADMIN_API_KEY`: enables `/admin/keys` (without it every `/admin` route answers 404). */
  readonly adminApiKey: Option.Option<Redacted.Redacted<string>>
  /** `OPS_TOKEN`: when set, `/ready`'s details, `/metrics` and `/docs` require it as a bearer. */
  readonly opsToken: Option.Option<Redacted.Redacted<string>>
  readonly maxBodyBytes: number
  readonly maxContentChars: number
  /** `MAX_IMAGE_BYTES`: the largest inline (data: URL) image a `/v1` message may carry, decoded. */
  readonly maxImageBytes: number
  /** `MAX_TITLE_CHARS`: the longest thread title accepted. */
  readonly maxTitleChars: number
  /** `MAX_MESSAGES_PER_REQUEST`: the most messages one `/v1/chat/completions` request may carry. */
  readonly maxMessagesPerRequest: number
  /** `MAX_HEADER_BYTES`: the request line and headers together (Node's `maxHeaderSize`). */
  readonly maxHeaderBytes: number
  /** `GENERATION_MAX_MS`: a generation running longer is ended (`generation_timeout`). */
  readonly generationMaxMs: number
  /** `GENERATION_MAX_BYTES`: a reply whose text and tool-call arguments grow past this is ended (`generation_too_large`). */
  readonly generationMaxBytes: number
  /** `MAX_LISTENERS_PER_GENERATION`: streams one generation feeds at once; one more gets 429. */
  readonly maxListenersPerGeneration: number
  /** `UPSTREAM_MAX_PAUSE_MS`: the longest pause a provider's own hint (`retry-after`, …) may impose. */
  readonly upstreamMaxPauseMs: number
  /** `SHUTDOWN_GRACE_MS`: on SIGTERM, how long waiting replies may take to finish. */
  readonly shutdownGraceMs: number
  /** `STALLED_WRITE_TIMEOUT_MS`: a reply stream whose client reads nothing this long is ended. */
  readonly stalledWriteTimeoutMs: number
  readonly coalesceEnabled: boolean
  /** `SSE_KEEPALIVE_MS`: how long a reply stream may stay silent before a `: keepalive` comment. */
  readonly sseKeepaliveMs: number
  /**
   * `RECONNECT_GRACE_MS`: how long a thread turn keeps running for a stream dropped for falling
   * behind (told to reconnect with `Last-Event-ID`), as if it still listened; 0 stops it at once.
   */
  readonly reconnectGraceMs: number
  /**
   * `REPLICA_ID`: this process's name: the owner of the replies it runs (stored with each reply's
   * lease), and its name in logs, `/ready`, the metrics' `replica` label and OTLP's
   * `service.instance.id`; default: host name, pid and a random suffix.
   */
  readonly replicaId: string
  /** `REPLY_LEASE_MS`: how long a running reply's lease holds; renewed every third of it while it runs. */
  readonly replyLeaseMs: number
  /** `REPLY_SAVE_INTERVAL_MS`: how often the text of running replies is written (16 KB of new text writes sooner). */
  readonly replySaveIntervalMs: number
  /**
   * `COALESCE_REPEAT_WINDOW_MS`: an identical send arriving this soon after the thread's last turn
   * completed (with no `parent_message_id`) is taken for a duplicate of it (a retry that crossed the
   * reply), not a new turn.
   */
  readonly coalesceRepeatWindowMs: number
  /** `THREAD_IDLE_MS`: how long a thread's actor (its conversation in memory) outlives its last turn. */
  readonly threadIdleMs: number
  /** `UPSTREAM_STREAM`: which upstream calls stream when the client waits for the whole reply. */
  readonly upstreamStream: UpstreamStreaming
  readonly streamFanoutEnabled: boolean
  readonly coalesceErrorTtlMs: number
  readonly coalesceResultTtlMs: number
  readonly pacerMaxWaitMs: number
  readonly providers: Readonly<Record<ProviderName, ProviderSettings>>
  readonly upstream: UpstreamTimeouts
  readonly mock: MockSettings
  readonly otel: OtelSettings
  /** `MODEL_ALIASES`: alias → provider and model, for `/v1/chat/completions` (empty: none). */
  readonly modelAliases: ReadonlyMap<string, ModelTarget>
  /** Several replicas on one Redis (README, "Several replicas"); without `REDIS_URL`, none of it runs. */
  readonly cluster: ClusterSettings
}

export interface ClusterSettings {
  /** `REDIS_URL`: shares the pacer and the key limits between replicas (unset or empty: not shared). */
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
  /** `REDIS_KEY_PREFIX`: every key DAC writes starts with it (several deployments on one Redis). */
  readonly keyPrefix: string
  /** `REPLICA_COUNT`: while Redis is unreachable, each replica keeps 1/REPLICA_COUNT of every limit. */
  readonly replicaCount: number
  /** `SHARED_LEASE_MS`: a replica's slots are held under a lease it renews; a dead one's return after this. */
  readonly leaseMs: number
  /** `REDIS_COMMAND_TIMEOUT_MS`: a Redis command not answered this soon fails (and the replica falls back). */
  readonly commandTimeoutMs: number
}

const defaultBaseUrls: Record<ProviderName, string> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
  gemini: "https://generativelanguage.googleapis.com/v1beta",
  perplexity: "https://api.perplexity.ai",
  openrouter: "https://openrouter.ai/api/v1",
  mock: "mock://local",
}

const positiveInt = (name: string, fallback: number) =>
  Config.schema(Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThan(0)), name).pipe(
    Config.withDefault(fallback),
  )

const nonNegativeInt = (name: string, fallback: number) =>
  Config.schema(Schema.FiniteFromString.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)), name).pipe(
    Config.withDefault(fallback),
  )

/** Node's timers take at most 2^31-1 ms; a longer one would fire at once, so none is accepted. */
const maxTimerMs = 2 ** 31 - 1

/** A duration in milliseconds (`minimum` 0 or 1), within what a Node timer can wait. */
const durationMs = (name: string, fallback: number, minimum: 0 | 1 = 1) =>
  Config.schema(
    Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum, maximum: maxTimerMs })),
    name,
  ).pipe(Config.withDefault(fallback))

/** `1/0`, `true/false`, `yes/no`, `on/off`. */
const flag = (name: string, fallback: boolean) => Config.Boolean(name).pipe(Config.withDefault(fallback))

const providerConfig = (name: ProviderName) => {
  const p = name.toUpperCase()
  return Config.all({
    name: Config.succeed(name),
    apiKey: Config.option(Config.Redacted(`${p}_API_KEY`)),
    baseUrl: Config.URL(`${p}_BASE_URL`).pipe(
      Config.map((url) => url.toString().replace(/\/+$/, "")),
      Config.withDefault(defaultBaseUrls[name]),
    ),
    rps: positiveInt(`${p}_RPS`, name === "mock" ? 100_000 : 50),
    burst: positiveInt(`${p}_BURST`, name === "mock" ? 100_000 : 100),
    concurrency: positiveInt(`${p}_CONCURRENCY`, name === "mock" ? 10_000 : 64),
    maxQueue: nonNegativeInt(`${p}_MAX_QUEUE`, name === "mock" ? 100_000 : 1_000),
    models: Config.String(`${p}_MODELS`).pipe(
      Config.withDefault(""),
      Config.map((text) =>
        text
          .split(",")
          .map((model) => model.trim())
          .filter((model) => model !== ""),
      ),
    ),
  })
}

/** A secret that may be unset; set but empty counts as unset (an empty secret would match anyone). */
const secretOption = (name: string) =>
  Config.option(Config.Redacted(name)).pipe(
    Config.map(Option.filter((secret) => Redacted.value(secret).length > 0)),
  )

const logLevels: ReadonlyArray<LogLevel.LogLevel> = [
  "All",
  "Trace",
  "Debug",
  "Info",
  "Warn",
  "Error",
  "Fatal",
  "None",
]

/** `LOG_LEVEL` in any case (`info`, `WARN`, `Info`), as most tools spell levels. */
const logLevel = Config.schema(
  Schema.String.check(
    Schema.makeFilter((text) =>
      logLevels.some((level) => level.toLowerCase() === text.trim().toLowerCase())
        ? undefined
        : `expected one of ${logLevels.join(", ")} (any case)`,
    ),
  ),
  "LOG_LEVEL",
).pipe(
  Config.map((text) => logLevels.find((level) => level.toLowerCase() === text.trim().toLowerCase())!),
  Config.withDefault("Info" as const),
)

/**
 * `alias=provider/model,…` (whitespace around entries and names ignored, empty entries skipped):
 * the aliases, or what is wrong with the text.
 */
export const parseModelAliases = (text: string): Map<string, ModelTarget> | string => {
  const aliases = new Map<string, ModelTarget>()
  for (const raw of text.split(",")) {
    const entry = raw.trim()
    if (entry === "") continue
    const eq = entry.indexOf("=")
    if (eq < 0) return `entry "${entry}" has no "=" (expected alias=provider/model)`
    const alias = entry.slice(0, eq).trim()
    const target = entry.slice(eq + 1).trim()
    if (alias === "") return `entry "${entry}" has an empty alias`
    const slash = target.indexOf("/")
    const provider = target.slice(0, Math.max(slash, 0)).trim()
    const model = target.slice(slash + 1).trim()
    if (slash < 0 || provider === "" || model === "") {
      return `alias "${alias}": target "${target}" is not provider/model`
    }
    if (!isProviderName(provider)) {
      return `alias "${alias}": unknown provider "${provider}" (expected one of ${providerNames.join(", ")})`
    }
    if (aliases.has(alias)) return `duplicate alias "${alias}"`
    aliases.set(alias, { provider, model })
  }
  return aliases
}

const modelAliases = Config.schema(
  Schema.String.check(
    Schema.makeFilter((text) => {
      const parsed = parseModelAliases(text)
      return typeof parsed === "string" ? parsed : undefined
    }),
  ),
  "MODEL_ALIASES",
).pipe(
  Config.withDefault(""),
  // The check above already refused a text that does not parse.
  Config.map((text): ReadonlyMap<string, ModelTarget> => {
    const parsed = parseModelAliases(text)
    return typeof parsed === "string" ? new Map() : parsed
  }),
)

export const appConfig = Config.all({
  // 0 asks the OS for a free port (tests do).
  port: Config.schema(
    Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 0, maximum: 65535 })),
    "PORT",
  ).pipe(Config.withDefault(8000)),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  databaseUrl: Config.option(Config.Redacted("DATABASE_URL")),
  databasePoolSize: positiveInt("DATABASE_POOL_SIZE", 10),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault("./data")),
  logLevel,
  authMode: Config.schema(AuthMode, "AUTH_MODE").pipe(Config.withDefault("keys" as const)),
  adminApiKey: secretOption("ADMIN_API_KEY"),
  opsToken: secretOption("OPS_TOKEN"),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 1024 * 1024),
  maxContentChars: positiveInt("MAX_CONTENT_CHARS", 200_000),
  maxTitleChars: positiveInt("MAX_TITLE_CHARS", 1_000),
  // Anthropic's own limit per image; MAX_BODY_BYTES bounds the whole body first.
  maxImageBytes: positiveInt("MAX_IMAGE_BYTES", 5 * 1024 * 1024),
  maxMessagesPerRequest: positiveInt("MAX_MESSAGES_PER_REQUEST", 1_000),
  maxHeaderBytes: positiveInt("MAX_HEADER_BYTES", 16 * 1024),
  generationMaxMs: durationMs("GENERATION_MAX_MS", 10 * 60_000),
  generationMaxBytes: positiveInt("GENERATION_MAX_BYTES", 4 * 1024 * 1024),
  maxListenersPerGeneration: positiveInt("MAX_LISTENERS_PER_GENERATION", 1_000),
  upstreamMaxPauseMs: durationMs("UPSTREAM_MAX_PAUSE_MS", 60_000),
  shutdownGraceMs: durationMs("SHUTDOWN_GRACE_MS", 10_000, 0),
  stalledWriteTimeoutMs: durationMs("STALLED_WRITE_TIMEOUT_MS", 30_000),
  coalesceEnabled: flag("COALESCE_ENABLED", true),
  upstreamStream: Config.schema(UpstreamStreaming, "UPSTREAM_STREAM").pipe(
    Config.withDefault("threads" as const),
  ),
  sseKeepaliveMs: durationMs("SSE_KEEPALIVE_MS", 15_000),
  reconnectGraceMs: durationMs("RECONNECT_GRACE_MS", 30_000, 0),
  replicaId: Config.String("REPLICA_ID").pipe(
    Config.map((id) => id.trim()),
    Config.withDefault(`${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`),
  ),
  replyLeaseMs: durationMs("REPLY_LEASE_MS", 15_000),
  replySaveIntervalMs: durationMs("REPLY_SAVE_INTERVAL_MS", 250),
  threadIdleMs: durationMs("THREAD_IDLE_MS", 60_000, 0),
  coalesceRepeatWindowMs: durationMs("COALESCE_REPEAT_WINDOW_MS", 1_000, 0),
  streamFanoutEnabled: flag("STREAM_FANOUT_ENABLED", true),
  coalesceErrorTtlMs: durationMs("COALESCE_ERROR_TTL_MS", 2_000, 0),
  coalesceResultTtlMs: durationMs("COALESCE_RESULT_TTL_MS", 10_000, 0),
  pacerMaxWaitMs: durationMs("PACER_MAX_WAIT_MS", 30_000),
  providers: Config.all({
    openai: providerConfig("openai"),
    anthropic: providerConfig("anthropic"),
    gemini: providerConfig("gemini"),
    perplexity: providerConfig("perplexity"),
    openrouter: providerConfig("openrouter"),
    mock: providerConfig("mock"),
  }),
  upstream: Config.all({
    connectMs: durationMs("UPSTREAM_CONNECT_TIMEOUT_MS", 5_000),
    firstByteMs: durationMs("UPSTREAM_FIRST_BYTE_TIMEOUT_MS", 60_000),
    idleMs: durationMs("UPSTREAM_IDLE_TIMEOUT_MS", 60_000),
    maxAttempts: positiveInt("UPSTREAM_MAX_ATTEMPTS", 3),
    maxRetryDelayMs: durationMs("UPSTREAM_MAX_RETRY_DELAY_MS", 10_000),
  }),
  otel: Config.all({
    endpoint: Config.option(
      Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.map((url) => url.toString().replace(/\/+$/, ""))),
    ),
    protocol: Config.Literals(["http/protobuf", "http/json"], "OTEL_EXPORTER_OTLP_PROTOCOL").pipe(
      Config.withDefault("http/protobuf" as const),
    ),
    serviceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault("dac-gateway")),
    traceDelayMs: durationMs("OTEL_BSP_SCHEDULE_DELAY", 5_000),
    metricIntervalMs: durationMs("OTEL_METRIC_EXPORT_INTERVAL", 60_000),
  }),
  modelAliases,
  cluster: Config.all({
    redisUrl: secretOption("REDIS_URL"),
    keyPrefix: Config.String("REDIS_KEY_PREFIX").pipe(Config.withDefault("dac:")),
    replicaCount: positiveInt("REPLICA_COUNT", 1),
    leaseMs: Config.schema(
      Schema.FiniteFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 300, maximum: 600_000 })),
      "SHARED_LEASE_MS",
    ).pipe(Config.withDefault(5_000)),
    commandTimeoutMs: durationMs("REDIS_COMMAND_TIMEOUT_MS", 500),
  }),
  mock: Config.all({
    ttftMs: durationMs("MOCK_TTFT_MS", 20, 0),
    tokens: positiveInt("MOCK_TOKENS", 24),
    tokenIntervalMs: durationMs("MOCK_TOKEN_INTERVAL_MS", 3, 0),
  }),
})

/** Turns a ConfigError into one line naming the variable and what it expected. */
export const describeConfigError = (error: Config.ConfigError): string => {
  const text = error.message.replace(/^SchemaError\(|\)$/g, "")
  const variable = /at \["([^"]+)"\]/.exec(text)?.[1]
  const expected = text.split("\n")[0]
  return variable ? `Invalid configuration: ${variable}: ${expected}` : `Invalid configuration: ${text}`
}

export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  message: Schema.String,
}) {}

const load = (provider: ConfigProvider.ConfigProvider) =>
  appConfig
    .parse(provider)
    .pipe(Effect.mapError((error) => new InvalidConfig({ message: describeConfigError(error) })))

export class AppConfig extends Context.Service<AppConfig, AppConfigShape>()("dac/AppConfig") {
  /** Reads the process environment; a bad value fails start-up naming the variable. */
  static readonly layer = Layer.effect(AppConfig, load(ConfigProvider.fromEnv()))

  /** A config from a plain record, for tests: missing keys take their defaults. */
  static readonly fromRecord = (env: Record<string, string>) =>
    Layer.effect(AppConfig, load(ConfigProvider.fromEnv({ env })))
}
