// The Kafka transport of the bus (kafkajs): idempotent acks=all producer, one consumer group per subscriber.
import { randomUUID } from 'node:crypto';
import {
  type Admin,
  type Consumer,
  type ConsumerCrashEvent,
  Kafka,
  type LogEntry,
  logLevel,
  Partitioners,
  type Producer,
  type RetryOptions,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { Bus, BusHandler, BusMessage, SubscribeOptions, Subscription } from '../bus.ts';
import { PortcullisError } from '../errors.ts';
import { backoffDelay } from './backoff.ts';

export interface KafkaBusConfig {
  brokers: string[];
  clientId: string;
  /** Partitions of topics this bus creates; unset: the broker's `num.partitions`. */
  partitions?: number;
  /** Replication of topics this bus creates; unset: the broker's `default.replication.factor`. */
  replicationFactor?: number;
  /** TCP connect timeout per broker (default 3 s). */
  connectionTimeoutMs?: number;
  /** Per-request timeout (default 10 s). */
  requestTimeoutMs?: number;
}

/**
 * Retries are bounded on purpose: kafkajs would retry an idempotent producer forever, but
 * `publish` must reject while the broker is down so the outbox relay can report it and retry
 * itself. The price is a possible duplicate when an ack is lost, which the Bus contract allows.
 */
const PRODUCER_RETRY: RetryOptions = { retries: 4, initialRetryTime: 150, maxRetryTime: 2000 };
const ADMIN_RETRY: RetryOptions = { retries: 4, initialRetryTime: 150, maxRetryTime: 2000 };
/** A consumer gives up (crashes, then restarts) after ~3 s of failures: that is when an outage is reported. */
const CONSUMER_RETRY: RetryOptions = { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 };

const START_TIMEOUT_MS = 30_000;

const LIMITED_RETRIES_WARNING = 'Limiting retries for the idempotent producer may invalidate EoS guarantees';

function isRetriable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { retriable?: unknown }).retriable === true;
}

async function retryRetriable<T>(fn: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetriable(err) || attempt + 1 >= attempts) throw err;
      await new Promise((resolve) =>
        setTimeout(resolve, backoffDelay(attempt, { initialMs: 100, maxMs: 1000 })),
      );
    }
  }
}

function unavailable(what: string, err: unknown): PortcullisError {
  const reason = err instanceof Error ? err.message : String(err);
  return new PortcullisError('unavailable', `bus (kafka) ${what} failed: ${reason}`, { cause: err });
}

/**
 * kafkajs logs every failed connection attempt at ERROR (several a second during an outage) and
 * its lifecycle chatter at INFO. Outages are surfaced by us already (a rejected publish,
 * `onDisconnect`, component status), so per-connection errors become debug, its other
 * ERROR/WARN our warn, and its INFO our debug.
 */
const CONNECTION_NAMESPACES = new Set(['Connection', 'BrokerPool']);

function kafkaLogCreator(logger: Logger): () => (entry: LogEntry) => void {
  const log = logger.child({ lib: 'kafkajs' });
  return () =>
    ({ namespace, level, log: { message, timestamp: _t, logger: _l, ...extra } }) => {
      const fields = { namespace, ...extra };
      if (message === LIMITED_RETRIES_WARNING || CONNECTION_NAMESPACES.has(namespace)) {
        log.debug(fields, message); // LIMITED_RETRIES_WARNING: deliberate, see PRODUCER_RETRY
      } else if (level === logLevel.ERROR || level === logLevel.WARN) {
        log.warn(fields, message);
      } else if (level === logLevel.INFO) {
        log.debug(fields, message);
      } else {
        log.trace(fields, message);
      }
    };
}

function kafkaLogLevel(logger: Logger): logLevel {
  if (logger.isLevelEnabled('trace')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('debug')) return logLevel.INFO;
  return logLevel.WARN;
}

export class KafkaBus implements Bus {
  readonly transport = 'kafka' as const;
  readonly kafka: Kafka;
  private producer: Promise<Producer> | undefined;
  private admin: Promise<Admin> | undefined;
  private readonly knownTopics = new Set<string>();
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;

  constructor(
    readonly config: KafkaBusConfig,
    private readonly logger: Logger,
  ) {
    this.kafka = new Kafka({
      clientId: config.clientId,
      brokers: config.brokers,
      connectionTimeout: config.connectionTimeoutMs ?? 3000,
      requestTimeout: config.requestTimeoutMs ?? 10_000,
      retry: ADMIN_RETRY,
      logLevel: kafkaLogLevel(logger),
      logCreator: kafkaLogCreator(logger),
    });
  }

  async publish(messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new PortcullisError('unavailable', 'bus is closed');
    if (messages.length === 0) return;
    const byTopic = new Map<string, { key: string; value: string }[]>();
    for (const m of messages) {
      const list = byTopic.get(m.topic) ?? [];
      list.push({ key: m.key, value: m.value });
      byTopic.set(m.topic, list);
    }
    try {
      await this.ensureTopics([...byTopic.keys()]);
      const producer = await this.getProducer();
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs })),
      });
    } catch (err) {
      throw unavailable('publish', err);
    }
  }

  async subscribe(topic: string, handler: BusHandler, opts: SubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw new PortcullisError('unavailable', 'bus is closed');
    const groupId = `${this.config.clientId}-${randomUUID()}`;
    let ends: StartOffset[];
    try {
      await this.ensureTopics([topic]);
      const admin = await this.getAdmin();
      // Right after a topic is created its partitions may briefly answer NOT_LEADER, and this
      // admin call does not retry that by itself.
      const offsets = await retryRetriable(() => admin.fetchTopicOffsets(topic));
      ends = offsets.map((p) => ({ partition: p.partition, offset: p.high }));
    } catch (err) {
      throw unavailable('subscribe', err);
    }
    const sub = new KafkaSubscription(this, groupId, topic, ends, handler, opts, this.logger, () =>
      this.subscriptions.delete(sub),
    );
    try {
      await sub.start();
    } catch (err) {
      await sub.close().catch(() => {});
      throw unavailable('subscribe', err);
    }
    this.subscriptions.add(sub);
    return sub;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    const [producer, admin] = [this.producer, this.admin];
    this.producer = undefined;
    this.admin = undefined;
    await Promise.all([
      producer?.then((p) => p.disconnect()).catch(() => {}),
      admin?.then((a) => a.disconnect()).catch(() => {}),
    ]);
  }

  /** Deletes a closed subscription's consumer group; best effort (the broker expires it anyway). */
  async deleteGroup(groupId: string): Promise<void> {
    try {
      const admin = await this.getAdmin();
      await admin.deleteGroups([groupId]);
    } catch (err) {
      this.logger.debug({ err, groupId }, 'could not delete consumer group of a closed subscription');
    }
  }

  private async ensureTopics(topics: string[]): Promise<void> {
    const missing = topics.filter((t) => !this.knownTopics.has(t));
    if (missing.length === 0) return;
    const admin = await this.getAdmin();
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: this.config.partitions ?? -1,
        replicationFactor: this.config.replicationFactor ?? -1,
      })),
    });
    for (const t of missing) this.knownTopics.add(t);
  }

  /** Connected lazily and memoised; a failed connect is forgotten so the next call tries again. */
  private getProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        retry: PRODUCER_RETRY,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      const p = producer.connect().then(() => producer);
      this.producer = p;
      p.catch(() => {
        if (this.producer === p) this.producer = undefined;
        void producer.disconnect().catch(() => {});
      });
    }
    return this.producer;
  }

  private getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin({ retry: ADMIN_RETRY });
      const p = admin.connect().then(() => admin);
      this.admin = p;
      p.catch(() => {
        if (this.admin === p) this.admin = undefined;
        void admin.disconnect().catch(() => {});
      });
    }
    return this.admin;
  }
}

interface StartOffset {
  partition: number;
  offset: string;
}

/**
 * One subscriber = one consumer in its own group, so every instance sees every message. kafkajs
 * restarts a consumer that crashed on a retriable error (a broker outage) by itself; we watch
 * its instrumentation events to tell the subscriber: a crash is `onDisconnect`, the next group
 * join after it is `onReconnect`. A crash kafkajs will not restart from is handled by building a
 * new consumer in the same group, which resumes from the group's committed offsets.
 */
class KafkaSubscription implements Subscription {
  private consumer: Consumer | undefined;
  private down = false;
  private closed = false;
  /** While starting, a crash is part of getting started (kafkajs retries it), not an outage. */
  private starting = false;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private rebuildAttempt = 0;

  constructor(
    private readonly bus: KafkaBus,
    readonly groupId: string,
    private readonly topic: string,
    /** The end of each partition just before subscribing: where this subscriber starts. */
    private readonly startOffsets: StartOffset[],
    private readonly handler: BusHandler,
    private readonly opts: SubscribeOptions,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {}

  /**
   * Resolves once the consumer is positioned. `initial`: pin the new group at `startOffsets`.
   * A new group has no committed offset, so kafkajs would resolve "latest" at its first fetch
   * and again at every rejoin, and anything published in between would be skipped. Seeking
   * (which commits, with autoCommit) makes the start durable: a rejoin or a restart after a
   * crash resumes from the group's offsets instead. A rebuilt consumer (`initial` false)
   * resumes from them too. The seek is made on group join, because on a fresh broker the first
   * join can fail (coordinator still loading) and kafkajs restarts the consumer by itself.
   */
  async start(initial = true): Promise<void> {
    const consumer = this.bus.kafka.consumer({
      groupId: this.groupId,
      allowAutoTopicCreation: false,
      retry: CONSUMER_RETRY,
      sessionTimeout: 6000,
      heartbeatInterval: 2000,
      maxWaitTimeInMs: 500,
    });
    this.consumer = consumer;
    this.starting = true;
    let seeked = !initial;
    let fetchesSinceSeek = 0;
    let settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
    const positioned = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    positioned.catch(() => {}); // may settle after the start timed out; the race reports it
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (!seeked) {
        try {
          for (const { partition, offset } of this.startOffsets) {
            consumer.seek({ topic: this.topic, partition, offset });
          }
          seeked = true;
          fetchesSinceSeek = 0;
        } catch (err) {
          // The consumer went down again between joining and now; the next join seeks.
          this.logger.debug({ err, topic: this.topic }, 'could not pin the subscription start yet');
        }
      }
      this.joined(consumer);
    });
    // Seeks are applied (and committed) at the start of a fetch; the fetch in flight when we
    // seeked may predate them, so the second fetch after the seek is the first known to follow.
    consumer.on(consumer.events.FETCH, () => {
      if (seeked && ++fetchesSinceSeek >= 2) settle?.resolve();
    });
    consumer.on(consumer.events.CRASH, (e: ConsumerCrashEvent) => {
      if (this.starting) {
        if (!e.payload.restart) settle?.reject(e.payload.error);
        this.logger.debug({ err: e.payload.error, topic: this.topic }, 'bus consumer crashed while starting');
        return;
      }
      this.crashed(consumer, e);
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: this.topic, fromBeginning: false });
      await consumer.run({
        eachMessage: async ({ topic, message }) => {
          const msg = {
            topic,
            key: message.key?.toString('utf8') ?? '',
            value: message.value?.toString('utf8') ?? '',
          };
          try {
            await this.handler(msg);
          } catch (err) {
            this.logger.error({ err, topic, key: msg.key }, 'bus handler failed; message skipped');
          }
        },
      });
      await Promise.race([
        positioned,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error('the consumer did not join and start fetching in time')),
            START_TIMEOUT_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.starting = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.rebuildTimer);
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer) {
      await consumer
        .disconnect()
        .catch((err: unknown) => this.logger.debug({ err }, 'consumer disconnect failed'));
      await this.bus.deleteGroup(this.groupId);
    }
    this.onClosed();
  }

  private crashed(consumer: Consumer, e: ConsumerCrashEvent): void {
    if (consumer !== this.consumer || this.closed) return;
    const { error, restart } = e.payload;
    if (!this.down) {
      this.down = true;
      this.logger.warn({ err: error, topic: this.topic, restart }, 'bus subscription lost the broker');
      this.opts.onDisconnect?.(error);
    }
    if (!restart) this.scheduleRebuild();
  }

  private joined(consumer: Consumer): void {
    if (consumer !== this.consumer || this.closed) return;
    this.rebuildAttempt = 0;
    if (!this.down) return;
    this.down = false;
    this.logger.info({ topic: this.topic }, 'bus subscription reconnected');
    this.opts.onReconnect?.();
  }

  private scheduleRebuild(): void {
    this.rebuildTimer = setTimeout(() => void this.rebuild(), backoffDelay(this.rebuildAttempt++));
  }

  private async rebuild(): Promise<void> {
    if (this.closed) return;
    const old = this.consumer;
    await old?.disconnect().catch(() => {});
    if (this.closed) return;
    try {
      await this.start(false);
    } catch (err) {
      this.logger.debug({ err, topic: this.topic }, 'rebuilding the bus consumer failed; retrying');
      if (!this.closed) this.scheduleRebuild();
    }
  }
}
