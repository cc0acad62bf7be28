// Running the opa binary: one process group per run, a hard deadline, bounded output, no orphans.
import { spawn } from 'node:child_process';
import { PortcullisError } from '@portcullis/runtime';

export interface OpaRunOptions {
  cwd: string;
  /** Epoch milliseconds by which the process must have exited; it is killed (with its group) then. */
  deadline: number;
  /** Aborting kills the process group; the run then rejects with OpaRunAborted. */
  signal?: AbortSignal;
  /** Most bytes kept of each of stdout and stderr; the rest is dropped. */
  maxOutputBytes?: number;
}

export interface OpaRunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Rejection of a run that was aborted because its result is no longer needed. */
export class OpaRunAborted extends Error {
  constructor(what: string) {
    super(`opa ${what} was aborted`);
    this.name = 'OpaRunAborted';
  }
}

const DEFAULT_MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Go runtime settings for opa runs. An opa run lives for tens of milliseconds and, for ordinary
 * bundles, never holds more than ~50 MB, yet the default collector (GOGC=100) spends a quarter of
 * its CPU time collecting; three runs share the CPUs per revision, so that time is the PAP's
 * latency. GOGC=off with a memory limit collects only when the heap nears the limit, so a large
 * bundle stays bounded. Measured on the example bundle: check+test+build from 131 to 101 ms of
 * CPU (bench/pap). GOGC or GOMEMLIMIT set in the PAP's own environment win over these.
 */
export function opaRuntimeEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.GOGC !== undefined || env.GOMEMLIMIT !== undefined) return env;
  return { ...env, GOGC: 'off', GOMEMLIMIT: '256MiB' };
}

/**
 * Runs `opa <args>` in its own process group and resolves with its exit code and output, whatever
 * the code. Rejects with PortcullisError `timeout` when the deadline passes (after the whole group
 * has been killed and has exited, so the caller may remove the working directory), `internal`
 * when opa cannot be started or dies from a signal, OpaRunAborted when `signal` fires.
 * The promise settles only after the process has exited.
 */
export function runOpa(
  opaBin: string,
  args: readonly string[],
  options: OpaRunOptions,
): Promise<OpaRunResult> {
  const what = args[0] ?? 'opa';
  const maxOutput = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new OpaRunAborted(what));
      return;
    }
    const remaining = options.deadline - Date.now();
    if (remaining <= 0) {
      reject(timeoutError(what, options.deadline));
      return;
    }
    // detached: a new process group, so a kill reaches anything opa itself starts.
    const child = spawn(opaBin, args, {
      cwd: options.cwd,
      env: opaRuntimeEnv(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = collect(child.stdout, maxOutput);
    const stderr = collect(child.stderr, maxOutput);
    let ended: 'timeout' | 'aborted' | undefined;
    const killGroup = () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const timer = setTimeout(() => {
      ended ??= 'timeout';
      killGroup();
    }, remaining);
    const onAbort = () => {
      ended ??= 'aborted';
      killGroup();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (ended === 'timeout') reject(timeoutError(what, options.deadline));
      else if (ended === 'aborted') reject(new OpaRunAborted(what));
      else if (spawnError !== undefined) {
        reject(
          new PortcullisError('internal', `cannot run ${opaBin}: ${spawnError.message}`, {
            cause: spawnError,
          }),
        );
      } else if (code === null) {
        reject(new PortcullisError('internal', `opa ${what} was killed by ${signal ?? 'a signal'}`));
      } else {
        resolve({ exitCode: code, stdout: stdout.text(), stderr: stderr.text() });
      }
    });
  });
}

function timeoutError(what: string, deadline: number): PortcullisError {
  return new PortcullisError('timeout', `opa ${what} did not finish before the compile deadline`, {
    details: [{ step: what, deadline: new Date(deadline).toISOString() }],
  });
}

function collect(stream: NodeJS.ReadableStream, max: number): { text: () => string } {
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    if (size >= max) return;
    const kept = chunk.subarray(0, max - size);
    chunks.push(kept);
    size += kept.length;
  });
  return { text: () => Buffer.concat(chunks).toString('utf8') };
}

const versions = new Map<string, Promise<string>>();
const VERSION_TIMEOUT_MS = 10_000;

/**
 * The version of the opa binary at `opaBin` (`1.22.3`), from `opa version`; cached per path for
 * the life of the process (a failed lookup is not cached).
 */
export function opaVersion(opaBin: string): Promise<string> {
  let version = versions.get(opaBin);
  if (version === undefined) {
    version = runOpa(opaBin, ['version'], {
      cwd: process.cwd(),
      deadline: Date.now() + VERSION_TIMEOUT_MS,
    }).then(({ exitCode, stdout, stderr }) => {
      const match = /^Version:\s*(\S+)/m.exec(stdout);
      if (exitCode !== 0 || match === null) {
        throw new PortcullisError(
          'internal',
          `${opaBin} version did not report a version: ${stderr.trim() || stdout.trim()}`,
        );
      }
      return match[1]!;
    });
    versions.set(opaBin, version);
    version.catch(() => versions.delete(opaBin));
  }
  return version;
}
