import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { AppConfig } from "./config.ts"
import { appLayer } from "./layers.ts"

Layer.launch(appLayer(AppConfig.layer)).pipe(NodeRuntime.runMain)
