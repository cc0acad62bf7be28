// A bound on decisions in progress, shared by the HTTP and gRPC front doors.

/**
 * A counting limit without a queue: over the limit a caller is refused at once (429 /
 * RESOURCE_EXHAUSTED) rather than queued, so overload shows as fast refusals the client can
 * retry elsewhere instead of as growing latency. Every successful `tryAcquire` must be paired
 * with exactly one `release`.
 */
export class ConcurrencyLimit {
  private active = 0;

  constructor(readonly max: number) {}

  tryAcquire(): boolean {
    if (this.active >= this.max) return false;
    this.active++;
    return true;
  }

  release(): void {
    if (this.active > 0) this.active--;
  }

  get inFlight(): number {
    return this.active;
  }
}
