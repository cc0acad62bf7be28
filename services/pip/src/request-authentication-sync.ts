// Keeps the in-memory policy set equal to the database's RequestAuthentication resources, across PIP replicas.
import { type PolicySet, parseRequestAuthentication } from '@portcullis/identity';
import type { Bus, BusMessage, Component, ComponentStatus, Logger, Subscription } from '@portcullis/runtime';
import { IDENTITY_EVENTS_TOPIC } from './pip-outbox.ts';
import type {
  RequestAuthenticationStore,
  StoredRequestAuthentication,
} from './request-authentication-store.ts';

export interface RequestAuthenticationSyncOptions {
  store: RequestAuthenticationStore;
  policies: PolicySet;
  logger: Logger;
  /** Replicas announce changes here; without a bus only the backstop reload propagates them. */
  bus?: Bus;
  /** Backstop full reload (default 60 s; 0 turns it off). */
  reconcileIntervalMs?: number;
}

/*
 * How replicas converge. Each change commits with an outbox event; the relay publishes it on
 * `portcullis.identity.events`, and every replica reloads that one resource from the database
 * (events are hints: the row is the truth, so duplicates and reordering are harmless). The bus
 * does not promise delivery to a replica that was disconnected, so a reconnect reloads everything,
 * and so does a periodic backstop. The replica that made a change applies it at once.
 */
export class RequestAuthenticationSync implements Component {
  readonly name = 'request-authentications';
  private readonly opts: RequestAuthenticationSyncOptions;
  private readonly log: Logger;
  private subscription: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loaded = false;
  private busDown: string | undefined;
  private lastError: string | undefined;
  private stopped = false;
  /** Reloads are serialised so an older snapshot never lands after a newer one. */
  private queue: Promise<void> = Promise.resolve();

  constructor(opts: RequestAuthenticationSyncOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: this.name });
  }

  /** Loads every resource, then listens for changes. A bus that is down now does not stop the start. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.reloadAll();
    const { bus } = this.opts;
    if (bus !== undefined) {
      try {
        this.subscription = await bus.subscribe(IDENTITY_EVENTS_TOPIC, (m) => this.onMessage(m), {
          onDisconnect: (err) => {
            this.busDown = err instanceof Error ? err.message : String(err);
          },
          onReconnect: () => {
            this.busDown = undefined;
            void this.reloadAll().catch(() => undefined);
          },
        });
      } catch (err) {
        // The backstop reload keeps replicas converging; the state says why it is slower.
        this.busDown = err instanceof Error ? err.message : String(err);
        this.log.warn({ err }, 'cannot subscribe to identity events; relying on periodic reloads');
      }
    }
    const every = this.opts.reconcileIntervalMs ?? 60_000;
    if (every > 0) {
      this.timer = setInterval(() => void this.reloadAll().catch(() => undefined), every);
      this.timer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const subscription = this.subscription;
    this.subscription = undefined;
    await subscription?.close();
    await this.queue.catch(() => undefined);
  }

  status(): ComponentStatus {
    if (!this.loaded) return { state: 'NOT_READY', message: this.lastError ?? 'loading' };
    if (this.lastError !== undefined)
      return { state: 'WARN', message: `last reload failed: ${this.lastError}` };
    if (this.busDown !== undefined)
      return { state: 'WARN', message: `bus down, reloading periodically: ${this.busDown}` };
    return { state: 'OK', message: `${this.opts.policies.list().length} resources` };
  }

  /** Applies a change this replica committed, without waiting for its event. */
  applyLocal(record: StoredRequestAuthentication | { namespace: string; name: string; deleted: true }): void {
    if ('deleted' in record) this.opts.policies.delete(record.namespace, record.name);
    else this.apply(record);
  }

  /** Replaces the whole set with the database's. Rejects (and keeps the current set) when the database fails. */
  reloadAll(): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.stopped && this.loaded) return;
      let records: StoredRequestAuthentication[];
      try {
        records = await this.opts.store.list();
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        throw err;
      }
      const { policies } = this.opts;
      const keep = new Set<string>();
      for (const record of records) {
        keep.add(`${record.namespace}/${record.name}`);
        this.apply(record);
      }
      for (const resource of policies.list()) {
        const { namespace, name } = resource.metadata;
        if (!keep.has(`${namespace}/${name}`)) policies.delete(namespace, name);
      }
      this.loaded = true;
      this.lastError = undefined;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async onMessage(message: BusMessage): Promise<void> {
    let event: { namespace?: unknown; name?: unknown; type?: unknown };
    try {
      event = JSON.parse(message.value) as typeof event;
    } catch {
      return;
    }
    if (event.type !== 'request-authentication.changed') return;
    const { namespace, name } = event;
    if (typeof namespace !== 'string' || typeof name !== 'string') return;
    const run = this.queue.then(async () => {
      const record = await this.opts.store.get(namespace, name);
      if (record === undefined) this.opts.policies.delete(namespace, name);
      else this.apply(record);
    });
    this.queue = run.catch(() => undefined);
    await run;
  }

  private apply(record: StoredRequestAuthentication): void {
    const current = this.opts.policies.get(record.namespace, record.name);
    // Unchanged resources are not re-put: a put resets compiled scopes and would refetch nothing, but costs work.
    if (current !== undefined && this.versions.get(current) === record.version) return;
    try {
      const resource = parseRequestAuthentication(record.document);
      this.versions.set(resource, record.version);
      this.opts.policies.put(resource);
    } catch (err) {
      // Stored documents were valid when written; one that no longer validates (a stricter
      // release) must not keep the others from loading.
      this.log.error(
        { err, namespace: record.namespace, name: record.name },
        'stored RequestAuthentication is invalid; skipped',
      );
    }
  }

  private readonly versions = new WeakMap<object, number>();
}
