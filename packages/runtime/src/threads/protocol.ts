// Messages between a ThreadPool and its threads.

/** An error thrown in a thread, as plain data: structured cloning keeps an Error's message but not its own fields. */
export interface ThreadError {
  readonly name: string;
  readonly message: string;
  /** The error's own fields that survive structured cloning (`code`, `kind`, `details`, …), for `reviveError`. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** `configure` carries `{ key, state }`, `run` a task. */
export interface ToThread {
  readonly type: 'configure' | 'run';
  readonly id: number;
  readonly payload: unknown;
}

export type FromThread =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ThreadError };

export function toThreadError(error: unknown): ThreadError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === 'function' || typeof value === 'symbol') continue;
    try {
      // What postMessage could not clone (a socket, a function inside an object) is left out, not fatal.
      structuredClone(value);
      fields[key] = value;
    } catch {}
  }
  return { name: error.name, message: error.message, fields };
}
