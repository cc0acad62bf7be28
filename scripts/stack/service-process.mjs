// One service of the stack as a child process: its log lines prefixed on the terminal and kept in a file.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { guardChild } from '../lib/orphan-guard.mjs';
import { formatLogLine } from './log-lines.mjs';

const KEEP_LINES = 40;

/**
 * Spawns `node --import tsx <main>` in `cwd`. Every output line goes, as it is, to `logFile`, and,
 * formatted, to `print` behind a `name │` prefix; the last lines are kept for `lastLines()`, which
 * the launcher shows when the service dies. An orphan guard stops the service if the launcher is
 * killed outright.
 */
export async function startServiceProcess({ name, main, cwd, env, logFile, print, prefix, colours }) {
  const log = createWriteStream(logFile, { flags: 'a' });
  log.on('error', () => {});
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  child.once('exit', guardChild(child.pid, 'TERM'));

  const recent = [];
  const onLine = (line) => {
    log.write(`${line}\n`);
    const plain = formatLogLine(line);
    for (const shown of colours ? formatLogLine(line, colours) : plain) print(`${prefix}${shown}`);
    recent.push(...plain);
    if (recent.length > KEEP_LINES) recent.splice(0, recent.length - KEEP_LINES);
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);

  let exit;
  // 'close' comes after the output streams have ended, so every line has been seen by then.
  const exited = new Promise((resolve) => {
    child.once('close', (code, signal) => {
      exit = { code, signal };
      log.end(() => resolve(exit));
    });
  });

  return {
    name,
    pid: child.pid,
    exited,
    get exit() {
      return exit;
    },
    lastLines: () => [...recent],
    /** SIGTERM (the service's graceful shutdown), SIGKILL after `timeoutMs`; resolves with how it exited. */
    async stop(timeoutMs = 20_000) {
      if (exit) return exit;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
    kill() {
      if (!exit) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Thrown when a service dies or does not become ready; carries its last log lines. */
export class ServiceFailure extends Error {
  constructor(service, message) {
    super(message);
    this.name = 'ServiceFailure';
    this.service = service;
  }
}

/**
 * Resolves once `url` answers 200. Rejects with ServiceFailure as soon as the process exits, or at
 * the deadline; resolves `false` early when `stopping()` turns true (the stack is being stopped).
 */
export async function waitUntilReady(service, url, { timeoutMs, stopping }) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (stopping()) return false;
    if (service.exit) {
      const { code, signal } = service.exit;
      throw new ServiceFailure(service, `${service.name} exited during start (${signal ?? `code ${code}`})`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) return true;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err?.cause?.code ?? err?.message ?? String(err);
    }
    if (Date.now() >= deadline) {
      throw new ServiceFailure(
        service,
        `${service.name} was not ready within ${timeoutMs / 1000} s (${url}: ${last})`,
      );
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 100)), service.exited]);
  }
}
