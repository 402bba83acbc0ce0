import { NodeRuntime } from "@effect/platform-node"
import { Layer, Runtime } from "effect"
import { AppConfig } from "./config.ts"
import { appLayer } from "./layers.ts"

/** SIGTERM and SIGINT interrupt the app: a stop asked for and carried out (shutdown.ts) exits 0. */
const teardown: Runtime.Teardown = (exit, onExit) =>
  Runtime.defaultTeardown(exit, (code) => onExit(code === 130 ? 0 : code))

Layer.launch(appLayer(AppConfig.layer)).pipe(NodeRuntime.runMain({ teardown }))
