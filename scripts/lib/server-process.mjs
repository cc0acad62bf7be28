// What the launchers of local servers (Postgres, Kafka) share: reading a server's log tail for an error, and awaiting its exit.
import { readFile } from 'node:fs/promises';

/** The last `lines` lines of a log file ('' if it cannot be read), for an error that says why a start failed. */
export async function fileTail(file, lines = 40) {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Resolves true once `child` has exited (at once if it already has), false after `timeoutMs`. */
export function waitForExit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
