import { spawnSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dropPrefix, reachable, runPrefix } from "../support/cluster.ts"
import { api, type RunningGateway, startGateway } from "../support/gateway.ts"

// promtool ships in Debian's `prometheus` package; .ci/run installs it (`PROMTOOL` names another
// binary). Without it this lint cannot run, and says so instead of passing silently.
const promtoolBin = process.env.PROMTOOL ?? "promtool"
const promtool = spawnSync(promtoolBin, ["--version"], { stdio: "ignore" }).status === 0
if (!promtool)
  console.warn(
    `${promtoolBin} not found (apt-get install -y prometheus): skipping the promtool lint of /metrics`,
  )

let gateway: RunningGateway
beforeAll(async () => {
  if (promtool)
    gateway = await startGateway({ MOCK_TOKENS: "3", MOCK_TTFT_MS: "5", MOCK_TOKEN_INTERVAL_MS: "1" })
})
afterAll(() => gateway?.close())

describe("GET /metrics and promtool", () => {
  it.skipIf(!promtool)(
    "promtool check metrics accepts a scrape with every family populated (skipped without promtool)",
    async () => {
      const c = api(gateway.baseUrl, `org-${crypto.randomUUID()}`)
      const threadId = (await c.post("/api/threads", {})).json.thread_id
      const turn = (content: string, model = "faststream-ttft") => ({
        role: "user",
        content,
        provider: "mock",
        model,
      })
      // Two replies and a failure: the histograms, the token usage and both outcomes have samples.
      await c.post(`/api/threads/${threadId}/messages`, turn("lint a"))
      await c.post(`/api/threads/${threadId}/messages`, turn("lint b"))
      await c.post(`/api/threads/${threadId}/messages`, turn("lint c", "failing-midstream"))
      const text = await (await fetch(`${gateway.baseUrl}/metrics`)).text()
      expect(text).toContain("_bucket{")

      const checked = spawnSync(promtoolBin, ["check", "metrics"], { input: text, encoding: "utf8" })
      // promtool prints one line per problem and exits non-zero (3 for lint problems); a clean
      // scrape prints nothing. Before the rename it said, e.g., "dac_ttft_ms metric names should
      // not contain abbreviated units".
      expect({ status: checked.status, problems: `${checked.stdout}${checked.stderr}` }).toEqual({
        status: 0,
        problems: "",
      })
    },
  )

  it.skipIf(!promtool)(
    'with REDIS_URL, every sample carries replica="…" and promtool still accepts the scrape (skipped without Redis at 127.0.0.1:6379)',
    async (context) => {
      if (!(await reachable(6379))) {
        console.warn("no Redis at 127.0.0.1:6379: skipping the promtool lint of a replica's /metrics")
        return context.skip()
      }
      const prefix = runPrefix("promtool")
      const replica = await startGateway({
        REDIS_URL: "redis://127.0.0.1:6379",
        REDIS_KEY_PREFIX: prefix,
        REPLICA_ID: "replica-a",
      })
      try {
        const c = api(replica.baseUrl, `org-${crypto.randomUUID()}`)
        const threadId = (await c.post("/api/threads", {})).json.thread_id
        await c.post(`/api/threads/${threadId}/messages`, {
          role: "user",
          content: "lint",
          provider: "mock",
          model: "faststream-ttft",
        })
        const text = await (await fetch(`${replica.baseUrl}/metrics`)).text()
        expect(text).toContain('dac_redis_up{replica="replica-a"} 1')
        // The turn just sent is one this replica shares (followable from the others for 60 s).
        expect(text).toContain('dac_relay_published{replica="replica-a"} 1')
        expect(text).toContain('dac_relay_copies{replica="replica-a"} 0')
        expect(text).toContain('dac_threads_held{replica="replica-a"} 0')
        const samples = text.split("\n").filter((line) => line !== "" && !line.startsWith("#"))
        expect(samples.filter((line) => !line.includes('replica="replica-a"'))).toEqual([])
        const checked = spawnSync(promtoolBin, ["check", "metrics"], { input: text, encoding: "utf8" })
        expect({ status: checked.status, problems: `${checked.stdout}${checked.stderr}` }).toEqual({
          status: 0,
          problems: "",
        })
      } finally {
        await replica.close()
        await dropPrefix("redis://127.0.0.1:6379", prefix)
      }
    },
  )
})
