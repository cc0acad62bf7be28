// Vitest global setup: provisions opa and starts the one Postgres server that every test file shares.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { PostgresServer } from '../../../scripts/lib/postgres.mjs';
import { startPostgres } from '../../../scripts/lib/postgres.mjs';
import { ensureOpa } from '../../../scripts/tools.mjs';
import { OPA_BIN_ENV, PG_URL_ENV, TMP_ENV } from './test-env.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Same value as process.env.PORTCULLIS_TEST_PG_URL. */
    portcullisPgUrl: string;
    /** Same value as process.env.OPA_BIN. */
    opaBin: string;
  }
}

/**
 * Kafka is deliberately not started here: a broker costs a JVM and seconds of start-up, so only the
 * tests that need one pay for it, through startTestKafka(). A PORTCULLIS_TEST_PG_URL already set
 * is used as is (a developer's own server), and no server is started.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const opa = await ensureOpa();
  process.env[OPA_BIN_ENV] = opa;

  const root = await mkdtemp(join(tmpdir(), 'portcullis-test-'));
  // As root, Postgres runs as the postgres user, which must be able to traverse into this directory.
  await chmod(root, 0o755);
  process.env[TMP_ENV] = root;

  let server: PostgresServer | undefined;
  const teardown = async (): Promise<void> => {
    await server?.stop();
    // Brokers that a crashed worker left behind are being stopped by their orphan guards right now
    // and may still write a file or two: retry instead of failing the run over a temp directory.
    await rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  };
  try {
    let pgUrl = process.env[PG_URL_ENV];
    if (!pgUrl) {
      server = await startPostgres({ dataDir: join(root, 'postgres'), durable: false, maxConnections: 300 });
      pgUrl = server.url;
      process.env[PG_URL_ENV] = pgUrl;
    }
    project.provide('portcullisPgUrl', pgUrl);
    project.provide('opaBin', opa);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
