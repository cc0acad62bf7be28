// Runs a service as a child process for a test: output captured for failure messages, readiness awaited.
import { type ChildProcess, spawn } from 'node:child_process';
import { guardChild } from '../../../scripts/lib/orphan-guard.mjs';

export interface SpawnServiceOptions {
  cwd?: string;
  /** Resolve only once a GET of this URL answers 200. */
  readyUrl?: string;
  /** Default 30 000. */
  readyTimeoutMs?: number;
  /** After SIGTERM, how long stop() waits before SIGKILL. Default 10 000. */
  stopTimeoutMs?: number;
  /** Keep at most this much of the most recent output. Default 256 KiB. */
  maxOutputChars?: number;
}

export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Service {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The most recent stdout and stderr, interleaved as they arrived. */
  output(): string;
  /** Settles when the process exits, however that happens. */
  readonly exited: Promise<ServiceExit>;
  /** SIGTERM, then SIGKILL after the stop deadline; resolves with how it exited. Idempotent. */
  stop(): Promise<ServiceExit>;
}

export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
}

/**
 * Polls `url` until it answers 200. Each pause races the process's exit, so a service that dies at
 * start is reported at once rather than at the deadline.
 */
async function untilReady({
  url,
  timeoutMs,
  exitOf,
  exited,
  output,
  cmd,
}: {
  url: string;
  timeoutMs: number;
  exitOf: () => ServiceExit | undefined;
  exited: Promise<ServiceExit>;
  output: () => string;
  cmd: string;
}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'none';
  for (;;) {
    const exit = exitOf();
    if (exit) {
      throw new ServiceStartError(
        `${cmd} exited (code ${exit.code}, signal ${exit.signal}) before ${url} was ready. Output:\n${output()}`,
      );
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (response.status === 200) return;
      lastError = `status ${response.status}`;
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() >= deadline) {
      throw new ServiceStartError(
        `timed out after ${timeoutMs} ms waiting for ${url} to answer 200 (last error: ${lastError}). Output:\n${output()}`,
      );
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), exited]);
  }
}

/**
 * Spawns `cmd args` with `env` over the current environment. With `readyUrl`, resolves once that URL
 * answers 200, and rejects (with the process's output) if the process exits first or the deadline
 * passes; the process is stopped in either case.
 */
export async function spawnService(
  cmd: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
  options: SpawnServiceOptions = {},
): Promise<Service> {
  const {
    cwd,
    readyUrl,
    readyTimeoutMs = 30_000,
    stopTimeoutMs = 10_000,
    maxOutputChars = 256 * 1024,
  } = options;
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let buffered = '';
  const capture = (chunk: Buffer): void => {
    buffered += chunk.toString('utf8');
    if (buffered.length > maxOutputChars) buffered = buffered.slice(-maxOutputChars);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);

  const exited = new Promise<ServiceExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => reject(new ServiceStartError(`cannot start ${cmd}: ${error.message}`)));
  });
  child.once('exit', guardChild(child.pid!, 'TERM'));

  let exit: ServiceExit | undefined;
  void exited.then((result) => {
    exit = result;
  });
  const service: Service = {
    child,
    pid: child.pid!,
    output: () => buffered,
    exited,
    async stop() {
      if (exit) return exit;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };

  if (readyUrl) {
    try {
      await untilReady({
        url: readyUrl,
        timeoutMs: readyTimeoutMs,
        exitOf: () => exit,
        exited,
        output: () => buffered,
        cmd,
      });
    } catch (error) {
      await service.stop();
      throw error;
    }
  }
  return service;
}
