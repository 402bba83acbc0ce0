import OpenAI from "openai"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { type FakeUpstream, startFakeUpstream } from "./fake-upstream.ts"
import { type RunningGateway, startGateway } from "./gateway.ts"

/**
 * A test file's gateway with every provider pointed at a fake upstream, and the official `openai`
 * SDK pointed at it and changed in nothing else (no retries, to see each answer). Started before
 * the file's tests, the upstream's record cleared before each, both closed after. `env` comes on top
 * of a fast mock (first token after 1 ms, no pause between tokens).
 */
export const sdkGateway = (env: Record<string, string> = {}) => {
  let upstream: FakeUpstream | undefined
  let gateway: RunningGateway | undefined
  let client: OpenAI | undefined
  beforeAll(async () => {
    upstream = await startFakeUpstream()
    gateway = await startGateway({
      ...upstream.env(),
      MOCK_TTFT_MS: "1",
      MOCK_TOKEN_INTERVAL_MS: "0",
      ...env,
    })
    client = new OpenAI({ apiKey: "sk-dac-test", baseURL: `${gateway.baseUrl}/v1`, maxRetries: 0 })
  })
  beforeEach(() => upstream?.reset())
  afterAll(async () => {
    await gateway?.close()
    await upstream?.close()
  })
  return {
    get upstream() {
      return upstream!
    },
    get gateway() {
      return gateway!
    },
    get client() {
      return client!
    },
  }
}
