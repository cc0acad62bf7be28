// The stack's Postgres: embedded, with its data and a generated password kept under the stack's home.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { startPostgres } from '../lib/postgres.mjs';

export const DATABASE_NAME = 'portcullis';

/**
 * The superuser password, generated on the first start. It is fixed when the data directory is
 * initialised, so a data directory without its password file cannot be used; say so rather than
 * fail on authentication later.
 */
async function password(home, dataDir) {
  const file = join(home, 'postgres-password');
  const kept = await readFile(file, 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  if (kept) return kept;
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(
      `${dataDir} holds a database but ${file}, its password, is missing: ` +
        `remove ${dataDir} to start with empty data, or restore the file`,
    );
  }
  const generated = randomBytes(18).toString('base64url');
  await writeFile(file, `${generated}\n`, { mode: 0o600 });
  return generated;
}

/** Creates `name` on the server unless it exists (CREATE DATABASE has no IF NOT EXISTS). */
async function ensureDatabase(adminUrl, name) {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Starts Postgres with its data in `<home>/postgres` (initialised on first use, kept afterwards)
 * on `port` (0: any free port) and makes sure the stack's database exists. Resolves with the
 * server (`stop()`) and the database's URL.
 */
export async function startStackPostgres({ home, port, logFile }) {
  const dataDir = join(home, 'postgres');
  const server = await startPostgres({ dataDir, port, password: await password(home, dataDir), logFile });
  try {
    await ensureDatabase(server.url, DATABASE_NAME);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const url = new URL(server.url);
  url.pathname = `/${DATABASE_NAME}`;
  return { server, url: url.toString() };
}
