// The stack's working process: tools, Postgres, each service in order, the examples; on a signal, all stopped in reverse.
//
// scripts/stack.mjs starts this in a session of its own, so a Ctrl-C in the terminal reaches only
// the launcher, which passes it on here: Postgres and the services must not get the terminal's
// SIGINT at the same moment, or Postgres would stop before the services had finished with it.
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';
import { ensureOpa } from '../tools.mjs';
import { startStackPostgres } from './database.mjs';
import { loadExampleBundles } from './examples.mjs';
import { colours } from './log-lines.mjs';
import { ServiceFailure, startServiceProcess, waitUntilReady } from './service-process.mjs';
import { SERVICES } from './services.mjs';
import { readStackSettings, StackError } from './settings.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
// A second signal this soon after the first is the same Ctrl-C delivered twice (by the terminal
// and by npm, which forwards it); a later one means "stop now".
const REPEAT_SIGNAL_MS = 2_000;

// A reader that went away (a closed pipe) must not turn the shutdown into a crash.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

const c = colours(Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);
const PREFIX_WIDTH = Math.max(5, ...SERVICES.map((s) => s.name.length));
const out = (line) => process.stdout.write(`${line}\n`);
const say = (message) => out(`${c.bold('stack'.padEnd(PREFIX_WIDTH))} │ ${message}`);
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Fails before anything starts when a port is taken, instead of a service dying on EADDRINUSE later. */
async function assertPortsFree(ports) {
  for (const service of SERVICES) {
    for (const [key, [name]] of Object.entries(service.ports)) {
      const port = ports[service.name][key];
      const free = await new Promise((done) => {
        const probe = createServer();
        probe.once('error', () => done(false));
        probe.listen(port, '127.0.0.1', () => probe.close(() => done(true)));
      });
      if (!free) {
        throw new StackError(
          `port ${port} (${name}, ${service.name} ${key}) is in use: stop what holds it, or set ${name} to another port`,
        );
      }
    }
  }
}

/** The environment a service runs with: ours, then the stack's settings where ours has none, then its ports. */
function serviceEnv(spec, ctx) {
  const env = { ...process.env };
  for (const [key, value] of Object.entries(spec.env(ctx))) if (!env[key]) env[key] = value;
  for (const [key, [name]] of Object.entries(spec.ports)) env[name] = String(ctx.ports[spec.name][key]);
  return env;
}

// What has been started, in start order; stopped in reverse.
const owned = [];
const services = [];
let stopping = false;
let requestStop;
const stopRequested = new Promise((done) => {
  requestStop = (outcome) => {
    stopping = true;
    done(outcome);
  };
});

async function startStack(settings) {
  const started = Date.now();
  const { home, ports } = settings;
  const logs = join(home, 'logs');
  await mkdir(logs, { recursive: true });
  await assertPortsFree(ports);

  const opaBin = await ensureOpa();
  say(`opa: ${opaBin}`);
  if (stopping) return undefined;

  let databaseUrl = settings.databaseUrl;
  if (databaseUrl) {
    say('postgres: using DATABASE_URL (no embedded Postgres)');
  } else {
    const since = Date.now();
    say(`postgres: starting, data in ${join(home, 'postgres')}`);
    const pg = await startStackPostgres({ home, port: settings.pgPort, logFile: join(logs, 'postgres.log') });
    owned.push({ name: 'postgres', stop: () => pg.server.stop() });
    databaseUrl = pg.url;
    say(`postgres: ready on port ${pg.server.port} (${seconds(since)})`);
    if (stopping) return undefined;
  }

  const ctx = { home, databaseUrl, opaBin, ports };
  const info = { started, databaseUrl, bundles: [] };
  for (const [index, spec] of SERVICES.entries()) {
    const since = Date.now();
    const env = serviceEnv(spec, ctx);
    const service = await startServiceProcess({
      name: spec.name,
      main: spec.main,
      cwd: ROOT,
      env,
      logFile: join(logs, `${spec.name}.log`),
      print: out,
      prefix: `${c.prefix(index)(spec.name.padEnd(PREFIX_WIDTH))} │ `,
      colours: c,
    });
    services.push(service);
    owned.push({ name: spec.name, stop: () => service.stop(STOP_TIMEOUT_MS), service });
    if (
      !(await waitUntilReady(service, spec.ready(ports[spec.name]), {
        timeoutMs: READY_TIMEOUT_MS,
        stopping: () => stopping,
      }))
    ) {
      return undefined;
    }
    say(`${spec.name}: ready, pid ${service.pid} (${seconds(since)})`);
    void service.exited.then(({ code, signal }) => {
      if (!stopping) {
        requestStop({
          failure: new ServiceFailure(service, `${spec.name} exited (${signal ?? `code ${code}`})`),
        });
      }
    });
    if (spec.name === 'pap' && !stopping) await loadExamples(spec, ctx, info);
    if (stopping) return undefined;
  }

  return info;
}

/**
 * Reads the PAP's admin token and loads the example bundles with it, right after the PAP is
 * ready: the services after it (a PDP, say) then start with a bundle to serve.
 */
async function loadExamples(pap, ctx, info) {
  const papEnv = serviceEnv(pap, ctx);
  info.tokenFile = resolve(ROOT, papEnv.PAP_ADMIN_TOKEN_FILE);
  info.tokenFromEnv = Boolean(papEnv.PAP_ADMIN_TOKEN);
  info.token = papEnv.PAP_ADMIN_TOKEN || (await readFile(info.tokenFile, 'utf8').catch(() => '')).trim();
  if (!info.token) {
    say(
      `${c.yellow('warning')}: no admin token in ${info.tokenFile} (the database has one from an earlier ` +
        'start): example bundles not checked. Set PAP_ADMIN_TOKEN to use a token you know.',
    );
    return;
  }
  register();
  const cli = await import('@portcullis/cli');
  const since = Date.now();
  info.bundles = await loadExampleBundles({
    cli,
    api: new cli.ApiClient({ url: `http://127.0.0.1:${ctx.ports.pap.http}`, token: info.token }),
    policiesDir: join(ROOT, 'policies'),
  }).catch((err) => {
    throw new StackError(err instanceof Error ? err.message : String(err));
  });
  const loaded = info.bundles.filter((b) => b.loaded).map((b) => `${b.name} r${b.revision}`);
  say(
    loaded.length > 0
      ? `examples: pushed and activated ${loaded.join(', ')} (${seconds(since)})`
      : 'examples: loaded on an earlier start, left as they are',
  );
}

/** A path relative to the working directory when it is below it, else absolute. */
function displayPath(path) {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

function banner(info, settings) {
  const { ports } = settings;
  const rows = SERVICES.flatMap((s) => s.endpoints(ports[s.name]));
  rows.push(['Postgres', info.databaseUrl, '']);
  if (info.token)
    rows.push([
      'Admin token',
      info.token,
      info.tokenFromEnv ? 'from PAP_ADMIN_TOKEN' : `also in ${displayPath(info.tokenFile)}`,
    ]);
  rows.push(['Logs', join(settings.home, 'logs'), 'one <service>.log each, JSON']);
  for (const b of info.bundles)
    rows.push([`Bundle`, `${b.name} r${b.revision} active`, b.loaded ? 'loaded now' : '']);
  const width = Math.max(...rows.map((r) => r[0].length));
  const lines = [
    '',
    ...rows.map(
      ([label, value, note]) => `  ${label.padEnd(width)}  ${value}${note ? `  ${c.dim(`(${note})`)}` : ''}`,
    ),
  ];
  if (ports.pap && info.token) {
    const url = `http://127.0.0.1:${ports.pap.http}`;
    const example = info.bundles.find((b) => b.name === 'envoy-authz');
    lines.push('', 'Try:', `  export PORTCULLIS_URL=${url} PORTCULLIS_TOKEN=${info.token}`);
    lines.push(`  curl -s -H "Authorization: Bearer $PORTCULLIS_TOKEN" $PORTCULLIS_URL/v1/bundles`);
    if (example) {
      const input = {
        entrypoint: 'envoy/authz/result',
        input: {
          attributes: { request: { http: { method: 'GET', path: '/productpage', headers: {} } } },
          parsed_path: ['productpage'],
        },
      };
      lines.push(
        `  curl -s -H "Authorization: Bearer $PORTCULLIS_TOKEN" -H 'content-type: application/json' \\`,
        `    -d '${JSON.stringify(input)}' \\`,
        `    $PORTCULLIS_URL/v1/bundles/envoy-authz/revisions/${example.revision}/evaluate`,
      );
    }
    lines.push('  npx portcullis bundle list');
    if (example && ports.pdp) {
      const input = {
        input: {
          attributes: { request: { http: { method: 'GET', path: '/productpage', headers: {} } } },
          parsed_path: ['productpage'],
        },
      };
      lines.push(
        `  curl -s -d '${JSON.stringify(input)}' \\`,
        `    http://127.0.0.1:${ports.pdp.http}/v1/data/envoy/authz/allow`,
      );
    }
  }
  lines.push('');
  for (const line of lines) out(line);
  say(`${c.bold('Portcullis is ready')} (${seconds(info.started)}). Press Ctrl-C to stop.`);
}

function reportFailure(err) {
  if (err instanceof ServiceFailure) {
    say(`${c.red('error')}: ${err.message}; its last log lines:`);
    for (const line of err.service.lastLines()) out(`  ${line}`);
  } else if (err instanceof StackError) {
    say(`${c.red('error')}: ${err.message}`);
  } else {
    say(`${c.red('error')}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}

async function stopAll() {
  for (const item of [...owned].reverse()) {
    const since = Date.now();
    try {
      const exit = await item.stop();
      const how =
        exit === undefined
          ? ''
          : exit.signal
            ? `, ${exit.signal}`
            : exit.code === 0
              ? ''
              : `, exit code ${exit.code}`;
      say(`${item.name}: stopped (${seconds(since)}${how})`);
    } catch (err) {
      say(`${c.red('error')}: stopping ${item.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function watchSignals() {
  let first;
  const onSignal = (signal) => {
    if (first === undefined) {
      first = Date.now();
      requestStop({ reason: signal });
    } else if (Date.now() - first > REPEAT_SIGNAL_MS) {
      say(`${signal} again: killing the services`);
      for (const service of services) void service.kill();
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, onSignal);
  // The launcher holds the other end of stdin: EOF means it is gone (killed, say), so stop too.
  if (process.argv.includes('--parent-pipe')) {
    process.stdin.on('error', () => {});
    process.stdin.on('close', () => requestStop({ reason: 'the launcher exited' }));
    process.stdin.resume();
  }
}

async function main() {
  watchSignals();
  let settings;
  let outcome;
  try {
    settings = readStackSettings(process.env, ROOT);
    const info = await startStack(settings);
    if (info && !stopping) banner(info, settings);
  } catch (err) {
    if (!stopping) outcome = { failure: err };
  }
  outcome ??= await stopRequested;
  stopping = true;
  if (outcome.failure) reportFailure(outcome.failure);
  else say(`stopping (${outcome.reason})`);
  await stopAll();
  if (!outcome.failure) say('stopped');
  process.exit(outcome.failure ? 1 : 0);
}

await main();
