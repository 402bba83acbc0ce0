/**
 * Waiters grouped by org and served round-robin: one org's burst of a thousand waits behind
 * itself, not in front of another org's single request.
 */
export class FairQueue<T> {
  private readonly byOrg = new Map<string, Array<T>>()
  private ring: Array<string> = []
  private cursor = 0
  size = 0

  /** How many orgs have a waiter. */
  get orgCount(): number {
    return this.ring.length
  }

  /** How many waiters this org has. */
  countOf(org: string): number {
    return this.byOrg.get(org)?.length ?? 0
  }

  push(org: string, item: T): void {
    let queue = this.byOrg.get(org)
    if (queue === undefined) {
      queue = []
      this.byOrg.set(org, queue)
      this.ring.push(org)
    }
    queue.push(item)
    this.size++
  }

  /**
   * The next item, taking orgs in turn. With `prefer`, the next org in turn that it accepts goes
   * first (the pacer prefers orgs under their share of in-flight slots); when it accepts none, plain
   * round-robin: a preference never leaves a slot idle.
   */
  shift(prefer?: (org: string) => boolean): T | undefined {
    if (this.size === 0) return undefined
    let index = this.cursor
    if (prefer !== undefined) {
      for (let i = 0; i < this.ring.length; i++) {
        const at = (this.cursor + i) % this.ring.length
        if (prefer(this.ring[at]!)) {
          index = at
          break
        }
      }
    }
    const org = this.ring[index]!
    const queue = this.byOrg.get(org)!
    // Every org in the ring has at least one waiter (an emptied org leaves the ring at once).
    const item = queue.shift()!
    this.size--
    if (queue.length === 0) {
      this.byOrg.delete(org)
      this.ring.splice(index, 1)
      this.cursor = this.ring.length === 0 ? 0 : index % this.ring.length
    } else {
      this.cursor = (index + 1) % this.ring.length
    }
    return item
  }

  /** Removes an item that gave up waiting. */
  remove(org: string, item: T): boolean {
    const queue = this.byOrg.get(org)
    const index = queue?.indexOf(item) ?? -1
    if (queue === undefined || index < 0) return false
    queue.splice(index, 1)
    this.size--
    if (queue.length === 0) {
      this.byOrg.delete(org)
      const ringIndex = this.ring.indexOf(org)
      this.ring.splice(ringIndex, 1)
      if (ringIndex < this.cursor) this.cursor--
      if (this.cursor >= this.ring.length) this.cursor = 0
    }
    return true
  }
}
