// Per-test Kafka brokers: each call starts its own single-node broker on free ports with a fresh data directory.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KafkaServer, StartKafkaOptions } from '../../../scripts/lib/kafka.mjs';
import { startKafka } from '../../../scripts/lib/kafka.mjs';
import { TMP_ENV } from './test-env.ts';

export interface TestKafka extends KafkaServer {
  /** Stops the broker and deletes its data directory. */
  dispose(): Promise<void>;
}

/**
 * Starts a broker and resolves once it serves metadata (a few seconds: a JVM starts). stop() and
 * start() keep the address and the data, to simulate an outage; dispose() when done. The data
 * directory lives under the test run's temporary directory, which the global setup removes at the end.
 */
export async function startTestKafka(options: Omit<StartKafkaOptions, 'dataDir'> = {}): Promise<TestKafka> {
  const dataDir = await mkdtemp(join(process.env[TMP_ENV] ?? tmpdir(), 'kafka-'));
  const server = await startKafka({ ...options, dataDir });
  return {
    brokers: server.brokers,
    port: server.port,
    controllerPort: server.controllerPort,
    dataDir: server.dataDir,
    logFile: server.logFile,
    get running() {
      return server.running;
    },
    start: () => server.start(),
    stop: () => server.stop(),
    kill: () => server.kill(),
    restart: () => server.restart(),
    async dispose() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
