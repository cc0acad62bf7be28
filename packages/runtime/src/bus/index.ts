// Chooses and builds the bus transport (BUS=kafka|postgres) and declares its configuration.
import type { Logger } from 'pino';
import type { Bus } from '../bus.ts';
import { ConfigError, type ConfigOf, env } from '../config.ts';
import { KafkaBus, type KafkaBusConfig } from './kafka-bus.ts';
import { PostgresBus, type PostgresBusConfig } from './postgres-bus.ts';

export { type BackoffOptions, backoffDelay } from './backoff.ts';
export { KafkaBus, type KafkaBusConfig } from './kafka-bus.ts';
export { PostgresBus, type PostgresBusConfig } from './postgres-bus.ts';

export type BusConfig =
  | ({ transport: 'kafka' } & KafkaBusConfig)
  | ({ transport: 'postgres' } & PostgresBusConfig);

/**
 * Builds the transport without touching the network: connections are made on first use, so a
 * service starts (and serves what it can) while its broker or database is down.
 */
export function createBus(config: BusConfig, logger: Logger): Bus {
  const log = logger.child({ component: 'bus', transport: config.transport });
  return config.transport === 'kafka' ? new KafkaBus(config, log) : new PostgresBus(config, log);
}

/** The bus settings a service spreads into its own config spec. */
export const BUS_SETTINGS = {
  BUS: env.oneOf(['kafka', 'postgres'], {
    default: 'postgres',
    doc: 'Event bus transport: `kafka`, or `postgres` (LISTEN/NOTIFY, for a one-machine stack).',
  }),
  KAFKA_BROKERS: env.list({
    default: ['127.0.0.1:9092'],
    doc: 'Kafka bootstrap brokers, comma-separated (BUS=kafka).',
  }),
  KAFKA_TOPIC_PARTITIONS: env.int({
    default: 0,
    min: 0,
    doc: 'Partitions of the bus topics this service creates; 0 uses the broker default (BUS=kafka).',
    defaultDoc: '0 (broker default)',
  }),
  BUS_DATABASE_URL: env.optionalString({
    doc: 'Postgres database of the bus (BUS=postgres); defaults to the service database.',
  }),
  BUS_RETENTION: env.duration({
    default: 3_600_000,
    defaultDoc: '`1h`',
    doc: 'How long the postgres bus keeps messages (BUS=postgres).',
  }),
};

export type BusSettings = ConfigOf<typeof BUS_SETTINGS>;

/** Turns loaded settings into a BusConfig; `clientId` names this service to Kafka. */
export function busConfigFromSettings(
  settings: BusSettings,
  defaults: { clientId: string; databaseUrl?: string },
): BusConfig {
  if (settings.BUS === 'kafka') {
    return {
      transport: 'kafka',
      brokers: settings.KAFKA_BROKERS,
      clientId: defaults.clientId,
      ...(settings.KAFKA_TOPIC_PARTITIONS > 0 ? { partitions: settings.KAFKA_TOPIC_PARTITIONS } : {}),
    };
  }
  const url = settings.BUS_DATABASE_URL ?? defaults.databaseUrl;
  if (!url) throw new ConfigError('BUS_DATABASE_URL', 'must be set when BUS=postgres');
  return { transport: 'postgres', url, retentionMs: settings.BUS_RETENTION };
}
