#!/usr/bin/env node
// `npm start`: the whole suite on one machine (embedded Postgres, every service, the example bundles); Ctrl-C stops it.
//
// This process only relays signals. The work happens in scripts/stack/supervisor.mjs, started in a
// session of its own so the terminal's Ctrl-C reaches this process alone and the supervisor can
// stop the services before Postgres. If this process is killed outright, the supervisor sees its
// stdin close and stops everything the same way.
//
// Settings: PORTCULLIS_HOME (data, logs, admin token; default ./.portcullis), PORTCULLIS_PG_PORT
// (default: any free port), DATABASE_URL (use that database instead of the embedded Postgres),
// and each service's own port variables (PAP_HTTP_PORT, …).
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const supervisor = fileURLToPath(new URL('./stack/supervisor.mjs', import.meta.url));
const child = spawn(process.execPath, [supervisor, '--parent-pipe'], {
  detached: true,
  stdio: ['pipe', 'inherit', 'inherit'],
});
child.stdin.on('error', () => {});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.once('error', (err) => {
  process.stderr.write(`stack: cannot start ${supervisor}: ${err.message}\n`);
  process.exit(1);
});
child.once('exit', (code, signal) => {
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});
