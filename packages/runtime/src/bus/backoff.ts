// Capped exponential backoff with jitter, shared by the bus transports and the outbox relay.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
}

/**
 * The delay before retry number `attempt` (0-based): doubles from `initialMs` up to `maxMs`,
 * with "equal jitter" (half fixed, half random) so replicas that failed together do not retry
 * in lockstep against a recovering broker or database.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}): number {
  const initial = opts.initialMs ?? 100;
  const max = opts.maxMs ?? 5000;
  const capped = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + (Math.random() * capped) / 2);
}
