import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer, Option, References } from "effect"
import { Otlp } from "effect/observability"
import { AppConfig } from "../config.ts"

/**
 * Traces, metrics and logs over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (protobuf, or JSON with
 * `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`). Without an endpoint nothing is installed: spans stay
 * no-ops and nothing is exported. With REDIS_URL the resource carries `service.instance.id` =
 * REPLICA_ID (Prometheus gets a `replica` label instead, http/prometheus.ts).
 */
export const OtelLive = Layer.unwrap(
  Effect.map(AppConfig, (config) =>
    Option.match(config.otel.endpoint, {
      onNone: () => Layer.succeed(References.TracerEnabled, false),
      onSome: (baseUrl) => {
        const options = {
          baseUrl,
          resource: {
            serviceName: config.otel.serviceName,
            // With REDIS_URL, OTLP's way of saying which replica: the resource's instance id.
            ...(Option.isSome(config.cluster.redisUrl)
              ? { attributes: { "service.instance.id": config.replicaId } }
              : {}),
          },
          tracerExportInterval: config.otel.traceDelayMs,
          metricsExportInterval: config.otel.metricIntervalMs,
          loggerExportInterval: config.otel.traceDelayMs,
        }
        return (
          config.otel.protocol === "http/json" ? Otlp.layerJson(options) : Otlp.layerProtobuf(options)
        ).pipe(Layer.provide(NodeHttpClient.layerUndici))
      },
    }),
  ),
)
