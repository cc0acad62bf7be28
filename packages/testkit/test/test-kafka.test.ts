// A per-test Kafka broker: produce/consume round trip, and its data survives a clean stop and a crash.
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKafka, type TestKafka } from '../src/index.ts';

/** Reads every message of `topic` from the beginning with a fresh consumer group until `expected` has arrived. */
async function readUntil(kafka: Kafka, topic: string, expected: string): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: `test-${randomUUID()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ message }) => {
            seen.push(message.value?.toString() ?? '');
            if (seen.includes(expected)) resolve();
          },
        })
        .catch(reject);
    });
    return seen;
  } finally {
    await consumer.disconnect();
  }
}

describe('startTestKafka', () => {
  let broker: TestKafka;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startTestKafka();
    kafka = new Kafka({ clientId: 'testkit-test', brokers: broker.brokers, logLevel: logLevel.NOTHING });
  });
  afterAll(async () => {
    await broker?.dispose();
  });

  async function produce(topic: string, value: string): Promise<void> {
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ value }] });
    } finally {
      await producer.disconnect();
    }
  }

  it('listens on 127.0.0.1 and carries a message from a producer to a consumer', async () => {
    expect(broker.brokers).toEqual([`127.0.0.1:${broker.port}`]);
    expect(broker.running).toBe(true);
    await produce('round-trip', 'hello');
    expect(await readUntil(kafka, 'round-trip', 'hello')).toEqual(['hello']);
  });

  it.each([
    { outage: 'a clean stop', interrupt: (b: TestKafka) => b.stop() },
    { outage: 'a crash (SIGKILL)', interrupt: (b: TestKafka) => b.kill() },
  ])('keeps its address and data across $outage and start()', async ({ interrupt }) => {
    const topic = `outage-${randomUUID()}`;
    await produce(topic, 'before');
    const brokers = [...broker.brokers];

    await interrupt(broker);
    expect(broker.running).toBe(false);
    const impatient = new Kafka({ brokers, retry: { retries: 0 }, logLevel: logLevel.NOTHING });
    await expect(impatient.admin().connect()).rejects.toThrow(/ECONNREFUSED|Connection error/);

    await broker.start();
    expect(broker.running).toBe(true);
    expect(broker.brokers).toEqual(brokers);
    await produce(topic, 'after');
    expect(await readUntil(kafka, topic, 'after')).toEqual(['before', 'after']);
  });
});
