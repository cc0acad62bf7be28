// `npm start` as a user runs it: a real launcher process, embedded Postgres, the PAP, example bundles, Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePorts, opaBin, TMP_ENV, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICES } from '../scripts/stack/services.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const READY = /Portcullis is ready/;

interface Launch {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function launch(env: Record<string, string>): Launch {
  const base: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', OPA_BIN: opaBin(), ...env };
  // The stack must start its own Postgres, whatever the test run was given.
  delete base.DATABASE_URL;
  const child = spawn(process.execPath, ['scripts/stack.mjs'], {
    cwd: ROOT,
    env: base,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once('exit', (code, signal) => done({ code, signal }));
  });
  return { child, output: () => output, exited };
}

/** Waits for the ready line; fails at once, with the output, if the launcher exits first. */
async function untilReady(stack: Launch): Promise<void> {
  let exit: { code: number | null } | undefined;
  void stack.exited.then((e) => {
    exit = e;
  });
  await waitFor(() => exit !== undefined || READY.test(stack.output()), {
    timeoutMs: 90_000,
    message: () => `the ready line; output so far:\n${stack.output()}`,
  });
  if (exit) throw new Error(`the stack exited (${JSON.stringify(exit)}) before ready:\n${stack.output()}`);
}

/** pid → [parent pid, state] of every process, from /proc. */
async function processTable(): Promise<Map<number, { ppid: number; state: string }>> {
  const table = new Map<number, { ppid: number; state: string }>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses, so split after the last ')'.
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    table.set(Number(name), { ppid: Number(ppid), state: state ?? '?' });
  }
  return table;
}

async function descendants(pid: number): Promise<number[]> {
  const table = await processTable();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, { ppid }] of table) {
      if (ppid === parent && !found.includes(child)) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** A zombie has exited; only its parent's bookkeeping is left (pid 1 here may never reap it). */
async function running(pids: number[]): Promise<number[]> {
  const table = await processTable();
  return pids.filter((pid) => {
    const entry = table.get(pid);
    return entry !== undefined && entry.state !== 'Z';
  });
}

async function untilAllGone(pids: number[]): Promise<void> {
  let left: number[] = pids;
  await waitFor(
    async () => {
      left = await running(pids);
      return left.length === 0;
    },
    { timeoutMs: 30_000, message: () => `processes ${left.join(', ')} to exit` },
  );
}

describe('npm start', () => {
  let home: string;
  let httpPort: number;
  let env: Record<string, string>;

  beforeAll(async () => {
    const base = await mkdtemp(join(process.env[TMP_ENV] ?? tmpdir(), 'stack-'));
    // As root, Postgres runs as the postgres user, which must reach its data directory.
    await chmod(base, 0o755);
    home = join(base, 'home');
    // Every port of every service of the stack, so nothing clashes with servers running beside the test.
    const names = SERVICES.flatMap((s) => Object.values(s.ports).map(([name]) => name));
    const ports = await freePorts(names.length);
    env = { PORTCULLIS_HOME: home, ...Object.fromEntries(names.map((name, i) => [name, String(ports[i])])) };
    httpPort = Number(env.PAP_HTTP_PORT);
  });

  const api = async <T>(token: string, path: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status, `GET ${path}`).toBe(200);
    return (await res.json()) as T;
  };

  interface Bundle {
    name: string;
    active: { revision: number } | null;
  }
  const snapshot = async (token: string) => {
    const { bundles } = await api<{ bundles: Bundle[] }>(token, '/v1/bundles');
    const revisions = await api<{ revisions: unknown[] }>(token, '/v1/bundles/envoy-authz/revisions');
    return {
      active: Object.fromEntries(bundles.map((b) => [b.name, b.active?.revision ?? null])),
      envoyRevisions: revisions.revisions.length,
    };
  };

  let first: { token: string; state: Awaited<ReturnType<typeof snapshot>> } | undefined;

  it('first start: serves the example bundles as active, prints the token, and stops on SIGINT with exit 0', async () => {
    const stack = launch(env);
    await untilReady(stack);
    const printed = /Admin token\s+(\S+)/.exec(stack.output())?.[1];
    const token = (await readFile(join(home, 'admin-token'), 'utf8')).trim();
    expect(printed).toBe(token);
    const state = await snapshot(token);
    expect(state).toEqual({ active: { 'envoy-authz': 1, rbac: 1 }, envoyRevisions: 1 });
    expect(stack.output()).toMatch(/examples: pushed and activated envoy-authz r1, rbac r1/);
    first = { token, state };

    // The launcher, the supervisor, Postgres and its workers, every service, and the orphan guards.
    const pids = await descendants(stack.child.pid!);
    expect(pids.length).toBeGreaterThanOrEqual(3 + SERVICES.length);
    stack.child.kill('SIGINT');
    expect(await stack.exited).toEqual({ code: 0, signal: null });
    await untilAllGone(pids);
    // Services in the reverse of their start order, Postgres last.
    const out = stack.output();
    const stopped = [...SERVICES.map((s) => s.name).reverse(), 'postgres'].map((name) =>
      out.indexOf(`${name}: stopped`),
    );
    expect(
      stopped.every((at) => at > -1),
      out,
    ).toBe(true);
    expect([...stopped].sort((a, b) => a - b)).toEqual(stopped);
  }, 150_000);

  it('second start keeps the data and does not push the examples again; a killed launcher leaves nothing behind', async () => {
    expect(first, 'the first start ran').toBeDefined();
    const stack = launch(env);
    await untilReady(stack);
    const token = (await readFile(join(home, 'admin-token'), 'utf8')).trim();
    expect(token).toBe(first!.token);
    expect(await snapshot(token)).toEqual(first!.state);
    expect(stack.output()).toMatch(/examples: loaded on an earlier start/);

    const pids = await descendants(stack.child.pid!);
    stack.child.kill('SIGKILL');
    await stack.exited;
    await untilAllGone(pids);
  }, 150_000);

  it('a service that dies during start stops the stack, with its last log lines', async () => {
    const stack = launch({ ...env, PAP_MAX_BODY: 'lots' });
    const { code } = await stack.exited;
    expect(code).toBe(1);
    expect(stack.output()).toMatch(/pap exited during start \(code 78\); its last log lines:/);
    expect(stack.output()).toMatch(/PAP_MAX_BODY: expected a size/);
    expect(stack.output()).toMatch(/postgres: stopped/);
  }, 150_000);

  describe('refuses to start, naming the setting', () => {
    let holder: Server;
    let heldPort: number;
    beforeAll(async () => {
      holder = createServer();
      await new Promise<void>((done) => holder.listen(0, '127.0.0.1', done));
      heldPort = (holder.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((done) => holder.close(() => done())));

    it.each([
      ['a port that is not a number', () => ({ PAP_HTTP_PORT: 'eighty' }), /PAP_HTTP_PORT: expected a port/],
      ['a port above 65535', () => ({ PAP_GRPC_PORT: '70000' }), /PAP_GRPC_PORT: expected a port/],
      ['a port in use', () => ({ PAP_HTTP_PORT: String(heldPort) }), /\(PAP_HTTP_PORT, pap http\) is in use/],
      ['a bad Postgres port', () => ({ PORTCULLIS_PG_PORT: '-1' }), /PORTCULLIS_PG_PORT: expected a port/],
    ])('%s', async (_name, settings, message) => {
      const stack = launch({ ...env, ...settings() });
      expect((await stack.exited).code).toBe(1);
      expect(stack.output()).toMatch(message);
    });
  });
});
