// Polls a condition until it holds: the way tests wait for asynchronous effects instead of sleeping.

export interface WaitForOptions {
  /** Give up after this long. Default 10 000. */
  timeoutMs?: number;
  /** Pause between attempts. Default 25. */
  intervalMs?: number;
  /** What is being waited for, for the timeout error; a function is called only on timeout. */
  message?: string | (() => string);
}

export class WaitForTimeoutError extends Error {
  override name = 'WaitForTimeoutError';
}

/**
 * Resolves as soon as `condition` returns true. A condition that throws counts as "not yet"; the
 * last such error is reported as the timeout error's cause.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  { timeoutMs = 10_000, intervalMs = 25, message = 'condition' }: WaitForOptions = {},
): Promise<void> {
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
    } catch (error) {
      lastError = error;
    }
    const waited = Date.now() - started;
    if (waited >= timeoutMs) {
      const what = typeof message === 'function' ? message() : message;
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new WaitForTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`, {
        cause: lastError,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, timeoutMs - waited)));
  }
}
