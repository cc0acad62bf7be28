// Test helpers shared by every package's tests: the shared Postgres, per-test Kafka brokers, opa, waiting and processes.
export { freePort, freePorts } from '../../../scripts/lib/free-port.mjs';
export type { KafkaServer, StartKafkaOptions } from '../../../scripts/lib/kafka.mjs';
export type { Service, ServiceExit, SpawnServiceOptions } from './spawn-service.ts';
export { ServiceStartError, spawnService } from './spawn-service.ts';
export type { TestDatabase } from './test-database.ts';
export { createTestDatabase } from './test-database.ts';
export { OPA_BIN_ENV, opaBin, PG_URL_ENV, TMP_ENV, testPostgresUrl } from './test-env.ts';
export type { TestKafka } from './test-kafka.ts';
export { startTestKafka } from './test-kafka.ts';
export type { WaitForOptions } from './wait-for.ts';
export { WaitForTimeoutError, waitFor } from './wait-for.ts';
