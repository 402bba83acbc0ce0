import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs"

/** Whether this system shows sockets under /proc (Linux); elsewhere the check below cannot run. */
export const canListSockets = existsSync("/proc/self/fd") && existsSync("/proc/net/tcp")

/** The inodes of the sockets this process holds open. */
const ownSocketInodes = (): Set<string> => {
  const inodes = new Set<string>()
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (match) inodes.add(match[1]!)
    } catch {
      // closed between the listing and the read
    }
  }
  return inodes
}

const tableRows = (path: string) =>
  existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((columns) => columns.length > 1)
    : []

/**
 * Every socket this process (any of its threads) listens on: TCP (v4, v6) as `tcp host:port`, Unix
 * as `unix path`. Read from /proc, so it also sees servers that no JavaScript object exposes.
 */
export const listeningSockets = (): Set<string> => {
  const own = ownSocketInodes()
  const found = new Set<string>()
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …; st 0A is LISTEN
    for (const columns of tableRows(table)) {
      if (columns[3] === "0A" && own.has(columns[9]!)) {
        const [, port] = columns[1]!.split(":")
        found.add(`tcp ${columns[1]!.split(":")[0]}:${Number.parseInt(port!, 16)}`)
      }
    }
  }
  // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 (__SO_ACCEPTCON) is a listener
  for (const columns of tableRows("/proc/net/unix")) {
    if ((Number.parseInt(columns[3]!, 16) & 0x10000) !== 0 && own.has(columns[6]!)) {
      found.add(`unix ${columns[7] ?? "(unnamed)"}`)
    }
  }
  return found
}
