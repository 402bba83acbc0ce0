/**
 * Self time by function and by file from a V8 `.cpuprofile` (node --cpu-prof), optionally only the
 * samples inside given windows of the monotonic clock (µs, as `process.hrtime` and V8's profile
 * timestamps count on Linux).
 *   node bench/cpuprofile-top.ts <file.cpuprofile> [--top 30] [--windows windows.json]
 * windows.json: `[[startUs, endUs], …]`.
 */
import { readFileSync } from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly startTime: number
  readonly endTime: number
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface ProfileSummary {
  readonly totalMs: number
  readonly idleMs: number
  readonly busyMs: number
  readonly byFunction: ReadonlyArray<{ readonly name: string; readonly ms: number }>
  readonly byFile: ReadonlyArray<{ readonly name: string; readonly ms: number }>
  readonly byPackage: ReadonlyArray<{ readonly name: string; readonly ms: number }>
  /** Each busy sample charged to the nearest gateway frame (src/) on its stack: our code and what it called. */
  readonly bySrcCaller: ReadonlyArray<{ readonly name: string; readonly ms: number }>
}

const shortUrl = (url: string) => {
  if (url === "") return "(native/VM)"
  const nm = url.lastIndexOf("node_modules/")
  if (nm >= 0) return url.slice(nm + "node_modules/".length)
  const src = url.indexOf("/wt-burst/")
  if (src >= 0) return url.slice(src + "/wt-burst/".length)
  return url.replace(/^file:\/\//, "")
}

const packageOf = (url: string) => {
  if (url === "") return "(native/VM)"
  if (url.startsWith("node:")) return "node: core"
  const nm = url.lastIndexOf("node_modules/")
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/")
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  const src = url.match(/\/wt-burst\/(src\/[^/]+|bench|scripts)\//)
  return src ? src[1]! : shortUrl(url)
}

export const summarize = (
  profile: Profile,
  windows: ReadonlyArray<readonly [number, number]> | undefined,
  top = 30,
): ProfileSummary => {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const srcCaller = (id: number): string => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { url, functionName } = byId.get(at)!.callFrame
      const i = url.indexOf("/wt-burst/src/")
      if (i >= 0) return `${functionName || "(anonymous)"} ${url.slice(i + "/wt-burst/".length)}`
    }
    return "(no src frame on the stack)"
  }
  const selfUs = new Map<number, number>()
  let t = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!
    // A sample's time runs until the next one.
    const dt = i + 1 < profile.timeDeltas.length ? profile.timeDeltas[i + 1]! : 0
    if (windows !== undefined && !windows.some(([a, b]) => t >= a && t <= b)) continue
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt)
  }
  const fn = new Map<string, number>()
  const file = new Map<string, number>()
  const pkg = new Map<string, number>()
  const caller = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    const { functionName, url, lineNumber } = node.callFrame
    total += us
    if (functionName === "(idle)") {
      idle += us
      continue
    }
    const name = `${functionName || "(anonymous)"} ${shortUrl(url)}${url ? `:${lineNumber + 1}` : ""}`
    fn.set(name, (fn.get(name) ?? 0) + us)
    const f =
      functionName === "(garbage collector)" || functionName === "(program)" ? functionName : shortUrl(url)
    file.set(f, (file.get(f) ?? 0) + us)
    const p =
      functionName === "(garbage collector)" || functionName === "(program)" ? functionName : packageOf(url)
    pkg.set(p, (pkg.get(p) ?? 0) + us)
    const c = srcCaller(id)
    caller.set(c, (caller.get(c) ?? 0) + us)
  }
  const sorted = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000 }))
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: (total - idle) / 1000,
    byFunction: sorted(fn),
    byFile: sorted(file),
    byPackage: sorted(pkg),
    bySrcCaller: sorted(caller),
  }
}

export const readProfile = (path: string): Profile => JSON.parse(readFileSync(path, "utf8")) as Profile

export const formatSummary = (s: ProfileSummary, label: string) => {
  const pct = (ms: number) => `${((100 * ms) / Math.max(s.busyMs, 1e-9)).toFixed(1)}%`
  const lines = [
    `${label}: sampled ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms`,
    "",
    "| self ms | % of busy | package / area |",
    "| ---: | ---: | --- |",
    ...s.byPackage.slice(0, 15).map((r) => `| ${r.ms.toFixed(1)} | ${pct(r.ms)} | ${r.name} |`),
    "",
    "| self ms | % of busy | file |",
    "| ---: | ---: | --- |",
    ...s.byFile.slice(0, 20).map((r) => `| ${r.ms.toFixed(1)} | ${pct(r.ms)} | ${r.name} |`),
    "",
    "| ms | % of busy | nearest src/ frame on the stack (it and what it called) |",
    "| ---: | ---: | --- |",
    ...s.bySrcCaller.slice(0, 20).map((r) => `| ${r.ms.toFixed(1)} | ${pct(r.ms)} | \`${r.name}\` |`),
    "",
    "| self ms | % of busy | function |",
    "| ---: | ---: | --- |",
    ...s.byFunction.map((r) => `| ${r.ms.toFixed(1)} | ${pct(r.ms)} | \`${r.name}\` |`),
  ]
  return lines.join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2]!
  const index = process.argv.indexOf("--top")
  const top = index >= 0 ? Number(process.argv[index + 1]) : 30
  const w = process.argv.indexOf("--windows")
  const windows =
    w >= 0 ? (JSON.parse(readFileSync(process.argv[w + 1]!, "utf8")) as Array<[number, number]>) : undefined
  console.log(formatSummary(summarize(readProfile(file), windows, top), file))
}
