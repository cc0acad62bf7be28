// waitFor: resolves as soon as its condition holds, and times out with a message that says what it waited for.
import { describe, expect, it } from 'vitest';
import { WaitForTimeoutError, waitFor } from '../src/index.ts';

/** A condition that turns true on its `n`th call. */
function trueOnCall(n: number): { calls: () => number; condition: () => boolean } {
  let calls = 0;
  return {
    calls: () => calls,
    condition: () => {
      calls += 1;
      return calls >= n;
    },
  };
}

describe('waitFor', () => {
  it.each([
    { name: 'already true', n: 1, wrap: (c: () => boolean) => c },
    { name: 'true on the third poll', n: 3, wrap: (c: () => boolean) => c },
    { name: 'async, true on the third poll', n: 3, wrap: (c: () => boolean) => async () => c() },
  ])('resolves when the condition is $name', async ({ n, wrap }) => {
    const probe = trueOnCall(n);
    await waitFor(wrap(probe.condition), { timeoutMs: 5_000, intervalMs: 1 });
    expect(probe.calls()).toBe(n);
  });

  it.each([
    { name: 'a string message', message: 'the moon to rise', expected: /waiting for the moon to rise$/ },
    {
      name: 'a message function',
      message: () => 'computed on timeout',
      expected: /waiting for computed on timeout$/,
    },
    { name: 'no message', message: undefined, expected: /timed out after 30 ms waiting for condition$/ },
  ])('times out with $name', async ({ message, expected }) => {
    const failure = waitFor(() => false, { timeoutMs: 30, intervalMs: 5, message });
    await expect(failure).rejects.toBeInstanceOf(WaitForTimeoutError);
    await expect(failure).rejects.toThrow(expected);
  });

  it('reports the last error a throwing condition raised, as message detail and cause', async () => {
    const cause = new Error('connection refused');
    const failure = waitFor(
      () => {
        throw cause;
      },
      { timeoutMs: 30, intervalMs: 5, message: 'the server' },
    );
    await expect(failure).rejects.toThrow('waiting for the server (last error: connection refused)');
    await expect(failure).rejects.toMatchObject({ cause });
  });
});
