import { createServer, type Server } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { AppConfig } from "../config.ts"
import { AdminAuthLive } from "./admin-auth.ts"
import { AdminHandlers } from "./admin-handlers.ts"
import { Api } from "./api.ts"
import { onClientError } from "./client-error.ts"
import { clusterReady } from "./cluster-ready.ts"
import { MetricsHandlers, SystemHandlers, ThreadsHandlers, UsageHandlers } from "./handlers.ts"
import { errorMiddleware } from "./middleware.ts"
import { OpenAiRoute } from "./openai.ts"
import { opsGuard } from "./ops-guard.ts"
import { OpsSeriesRoute } from "./ops-series.ts"
import { OrgScopeLive } from "./org.ts"
import { PrometheusRoute } from "./prometheus.ts"
import { WebRoutes } from "./web.ts"

/** Every route: the HttpApi (with `/openapi.json`), the docs page, and the error middleware. */
export const RoutesLive = Layer.unwrap(
  Effect.map(AppConfig, (config) =>
    Layer.mergeAll(
      HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
        Layer.provide([ThreadsHandlers, MetricsHandlers, UsageHandlers, SystemHandlers, AdminHandlers]),
        // The router resolves the middleware when it builds the routes, so it must stay visible.
        Layer.provideMerge(Layer.mergeAll(OrgScopeLive, AdminAuthLive)),
      ),
      HttpApiScalar.layer(Api, { path: "/docs" }),
      PrometheusRoute,
      WebRoutes,
      OpsSeriesRoute,
      OpenAiRoute,
      errorMiddleware(config.maxBodyBytes),
      opsGuard,
      // With REDIS_URL only: /ready gains the replica, Redis and the shared budget.
      Option.isSome(config.cluster.redisUrl) ? clusterReady : Layer.empty,
    ),
  ),
)

/** The Node server itself, for what Effect's HttpServer does not expose (stopping accepting). */
export class NodeServer extends Context.Service<NodeServer, Server>()("dac/http/NodeServer") {
  static readonly layer = Layer.effect(
    NodeServer,
    Effect.map(AppConfig, (config) => {
      // MAX_HEADER_BYTES bounds the request line and headers; more is a 431 with a JSON body.
      const server = createServer({ maxHeaderSize: config.maxHeaderBytes })
      server.on("clientError", onClientError(config.maxHeaderBytes))
      return server
    }),
  )
}

/** The HTTP server on HOST:PORT (PORT=0 picks a free port: tests read it from HttpServer.address). */
export const HttpServerLive = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const server = yield* NodeServer
    return HttpRouter.serve(RoutesLive, { disableLogger: true }).pipe(
      // A deep accept backlog: a burst of thousands of new connections must not be reset.
      Layer.provideMerge(
        NodeHttpServer.layer(() => server, {
          port: config.port,
          host: config.host,
          backlog: 4096,
          // The shutdown (shutdown.ts) ends every reply first; what is left is idle connections.
          gracefulShutdownTimeout: "1 second",
        }),
      ),
    )
  }),
).pipe(Layer.provideMerge(NodeServer.layer))
