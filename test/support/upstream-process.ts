import { performance } from "node:perf_hooks"
import { type FakeProvider, fakeProviders, type Reply, startFakeUpstream } from "./fake-upstream.ts"

/**
 * The fake upstream in a process of its own (`fork` this file with a JSON `{provider: Reply}` as its
 * argument), so that its clock is not the test process's: a test that drives a heavy load from its
 * own event loop would stamp arrivals late whenever that loop stalls. Answers `{type: "stats"}`
 * with each provider's arrival times (epoch ms) and most calls at once.
 */
const replies = JSON.parse(process.argv[2] ?? "{}") as Partial<Record<FakeProvider, Reply>>
const upstream = await startFakeUpstream()
for (const [provider, reply] of Object.entries(replies)) upstream.on(provider as FakeProvider, reply)
process.on("message", (message: { type: string }) => {
  if (message.type !== "stats") return
  process.send?.({
    type: "stats",
    arrivals: Object.fromEntries(
      fakeProviders.map((p) => [
        p,
        upstream.calls(p).map((call) => performance.timeOrigin + call.receivedAt),
      ]),
    ),
    maxConcurrency: Object.fromEntries(fakeProviders.map((p) => [p, upstream.concurrency(p).max])),
  })
})
process.on("disconnect", () => {
  void upstream.close().then(() => process.exit(0))
})
process.send?.({ type: "ready", env: upstream.env() })
