// BUS_SETTINGS and busConfigFromSettings: what a service's environment turns into, and what stops it.
import { describe, expect, it } from 'vitest';
import { BUS_SETTINGS, busConfigFromSettings, ConfigError, loadConfig } from '../src/index.ts';

const defaults = { clientId: 'pdp-1', databaseUrl: 'postgres://localhost/portcullis' };

describe('bus configuration', () => {
  it.each([
    {
      env: {},
      expected: { transport: 'postgres', url: 'postgres://localhost/portcullis', retentionMs: 3_600_000 },
    },
    {
      env: { BUS: 'postgres', BUS_DATABASE_URL: 'postgres://bus/db', BUS_RETENTION: '10m' },
      expected: { transport: 'postgres', url: 'postgres://bus/db', retentionMs: 600_000 },
    },
    {
      env: { BUS: 'kafka', KAFKA_BROKERS: 'a:9092, b:9092' },
      expected: { transport: 'kafka', brokers: ['a:9092', 'b:9092'], clientId: 'pdp-1' },
    },
    {
      env: { BUS: 'kafka', KAFKA_TOPIC_PARTITIONS: '6' },
      expected: { transport: 'kafka', brokers: ['127.0.0.1:9092'], clientId: 'pdp-1', partitions: 6 },
    },
  ])('$env → $expected.transport', ({ env, expected }) => {
    expect(busConfigFromSettings(loadConfig(BUS_SETTINGS, env), defaults)).toEqual(expected);
  });

  it.each([
    { env: { BUS: 'rabbitmq' }, variable: 'BUS' },
    { env: { BUS: 'kafka', KAFKA_TOPIC_PARTITIONS: 'many' }, variable: 'KAFKA_TOPIC_PARTITIONS' },
    { env: { BUS_RETENTION: 'forever' }, variable: 'BUS_RETENTION' },
  ])('a bad $variable stops the service, naming the variable', ({ env, variable }) => {
    expect(() => loadConfig(BUS_SETTINGS, env)).toThrow(ConfigError);
    expect(() => loadConfig(BUS_SETTINGS, env)).toThrow(variable);
  });

  it('needs a database for the postgres bus', () => {
    const settings = loadConfig(BUS_SETTINGS, { BUS: 'postgres' });
    expect(() => busConfigFromSettings(settings, { clientId: 'x' })).toThrow(/BUS_DATABASE_URL/);
  });
});
