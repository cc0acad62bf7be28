// Keeps a decision engine on the PAP's active revisions: bus events ring the bell, reconcile makes it true.
import { readBundleArchive } from '@portcullis/bundle';
import { type Revision, verifyDigest } from '@portcullis/engine';
import {
  type Bus,
  type BusMessage,
  backoffDelay,
  type Component,
  type ComponentStatus,
  type Logger,
  PortcullisError,
  type Registry,
  type Subscription,
  TOPICS,
} from '@portcullis/runtime';
import { type Activation, parseActivationEvent } from './activation.ts';
import { BundleCache } from './bundle-cache.ts';
import { GarbageCollector } from './collect-garbage.ts';
import { DistributionClient, type PolicySource } from './distribution-client.ts';
import { type LoadFailureReason, type SyncMetrics, syncMetrics } from './sync-metrics.ts';

/*
 * What makes every decision point converge, and what does not.
 *
 * - The event stream is a doorbell, not a delivery guarantee. The bus delivers at least once and
 *   in order per bundle while a subscriber is connected, but an event published while this
 *   process was down, starting, or cut off from the broker may never arrive. Events only make
 *   convergence fast.
 * - Reconcile is the guarantee. GetActive is asked at start, after every bus (re)connection and
 *   every `reconcileIntervalMs`; whatever the stream lost, this process converges on the PAP's
 *   active revisions within one interval of the PAP being reachable.
 * - Order is the activation sequence number, never the revision: a rollback is a newer
 *   activation of an older revision. Anything at or below the last applied (or already wanted)
 *   sequence of its bundle is ignored, so duplicates, replays and reordered events are harmless.
 * - A revision is served only after its bytes matched the activation's sha256 digest, were
 *   unpacked and instantiated; any failure (digest mismatch, bad archive, engine refusal) keeps
 *   the previous revision serving and is logged and counted. Transient failures (PAP down while
 *   fetching) are retried with backoff; the others wait for a newer activation or the next
 *   reconcile.
 * - The disk cache holds the last revision each bundle served. At start it is loaded before
 *   anything is asked of the network, so a process started while the PAP and the bus are down
 *   serves at once — possibly a stale revision, until reconcile succeeds.
 */

/** Where revisions go: a PolicyEngine, or a pool of them. Same contract as `PolicyEngine.load`. */
export interface RevisionTarget {
  /** Instantiates `rev` off the request path and swaps it in; rejects (keeping the old one) on failure. */
  load(rev: Revision): Promise<boolean>;
}

export type SyncSource = 'cache' | 'event' | 'reconcile';

export interface PolicySyncOptions {
  /** The engine (or pool) kept current. */
  engine: RevisionTarget;
  /** Policy events; without a bus, periodic reconcile alone keeps the engine current. */
  bus?: Bus;
  /** The PAP's PolicyDistribution address (`host:port`), or a client (tests inject faults with one). */
  distribution: string | PolicySource;
  /** Directory of the last-good-bundle cache; no cache when absent. */
  cacheDir?: string;
  /** Period of the reconcile with GetActive (default 30 s). */
  reconcileIntervalMs?: number;
  /** Bundles to follow; all when absent or empty. */
  bundles?: string[];
  logger: Logger;
  metrics: { registry: Registry };
  /** Largest bundle archive fetched, and largest total unpacked (default 256 MiB). */
  maxBundleBytes?: number;
  /** Deadline of one FetchBundle (default 30 s). */
  fetchTimeoutMs?: number;
}

/** What a bundle serves now, as PolicySync loaded it. */
export interface SyncedBundle {
  revision: number;
  digest: string;
  activationSeq: number;
  activatedAt?: Date;
  source: SyncSource;
  loadedAt: Date;
}

interface Outage {
  since: number;
  message: string;
}

interface BundleState {
  applied?: Activation & { source: SyncSource; loadedAt: Date };
  wanted?: { activation: Activation; source: SyncSource };
  loop?: Promise<void>;
  failure?: { reason: LoadFailureReason; message: string; revision: number };
  retryTimer?: NodeJS.Timeout;
  retryAttempt: number;
}

class SyncFailure extends Error {
  constructor(
    readonly reason: LoadFailureReason,
    message: string,
    /** Worth retrying soon by itself (the PAP was unreachable), rather than at the next activation or reconcile. */
    readonly transient: boolean,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SyncFailure';
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const MAX_FILES = 100_000;

export class PolicySync implements Component {
  readonly name = 'policy-sync';
  private readonly opts: PolicySyncOptions;
  private readonly source: PolicySource;
  private readonly ownsSource: boolean;
  private readonly cache: BundleCache | undefined;
  private readonly follow: ReadonlySet<string> | undefined;
  private readonly metrics: SyncMetrics;
  private readonly logger: Logger;
  private readonly maxBundleBytes: number;
  private readonly reconcileIntervalMs: number;
  private readonly bundles = new Map<string, BundleState>();
  private readonly abort = new AbortController();
  private readonly collector = new GarbageCollector();
  private running = false;
  private started = false;
  private subscription: Subscription | undefined;
  private subscribing: Promise<void> | undefined;
  private subscribeTimer: NodeJS.Timeout | undefined;
  private subscribeAttempt = 0;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> | undefined;
  private reconcileAgain = false;
  private papDown: Outage | undefined;
  private busDown: Outage | undefined;
  private lastReconcile: Date | undefined;

  constructor(opts: PolicySyncOptions) {
    this.opts = opts;
    this.ownsSource = typeof opts.distribution === 'string';
    this.source =
      typeof opts.distribution === 'string' ? new DistributionClient(opts.distribution) : opts.distribution;
    this.cache = opts.cacheDir ? new BundleCache(opts.cacheDir) : undefined;
    this.follow = opts.bundles && opts.bundles.length > 0 ? new Set(opts.bundles) : undefined;
    this.metrics = syncMetrics(opts.metrics.registry);
    this.logger = opts.logger.child({ component: 'policy-sync' });
    this.maxBundleBytes = opts.maxBundleBytes ?? 256 * 1024 * 1024;
    this.reconcileIntervalMs = opts.reconcileIntervalMs ?? 30_000;
  }

  /**
   * Loads the disk cache (awaited: when this resolves, cached revisions serve), then subscribes
   * and reconciles in the background; readiness is `status()`.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.started = true;
    await this.loadCache();
    this.subscribing = this.subscribe();
    void this.reconcile();
    this.reconcileTimer = setInterval(() => void this.reconcile(), this.reconcileIntervalMs);
    this.reconcileTimer.unref();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    clearInterval(this.reconcileTimer);
    this.collector.stop();
    clearTimeout(this.subscribeTimer);
    for (const s of this.bundles.values()) clearTimeout(s.retryTimer);
    await this.subscribing;
    await this.subscription
      ?.close()
      .catch((err: unknown) => this.logger.warn({ err }, 'closing the subscription failed'));
    this.subscription = undefined;
    await Promise.allSettled([this.reconciling, ...[...this.bundles.values()].map((s) => s.loop)]);
    if (this.ownsSource) this.source.close();
  }

  status(): ComponentStatus {
    if (!this.running) return { state: 'NOT_READY', message: this.started ? 'stopped' : 'not started' };
    const problems: string[] = [];
    const now = Date.now();
    if (this.papDown) {
      problems.push(
        `PAP unreachable for ${Math.round((now - this.papDown.since) / 1000)}s: ${this.papDown.message}`,
      );
    }
    if (this.busDown) {
      problems.push(
        `bus disconnected for ${Math.round((now - this.busDown.since) / 1000)}s: ${this.busDown.message}`,
      );
    }
    const serving: string[] = [];
    for (const [bundle, s] of this.bundles) {
      if (s.applied) serving.push(`${bundle} r${s.applied.revision}`);
      if (s.failure)
        problems.push(`${bundle} r${s.failure.revision} refused (${s.failure.reason}): ${s.failure.message}`);
    }
    for (const bundle of this.follow ?? []) {
      if (!this.bundles.get(bundle)?.applied) problems.push(`${bundle}: nothing loaded yet`);
    }
    if (serving.length === 0) {
      return { state: 'NOT_READY', message: ['no bundle loaded yet', ...problems].join('; ') };
    }
    const message = [`serving ${serving.join(', ')}`, ...problems].join('; ');
    return { state: problems.length > 0 ? 'WARN' : 'OK', message };
  }

  /** What each bundle serves now. */
  applied(): Record<string, SyncedBundle> {
    const out: Record<string, SyncedBundle> = {};
    for (const [bundle, s] of this.bundles) {
      if (!s.applied) continue;
      const { revision, digest, activationSeq, activatedAt, source, loadedAt } = s.applied;
      out[bundle] = {
        revision,
        digest,
        activationSeq,
        source,
        loadedAt,
        ...(activatedAt ? { activatedAt } : {}),
      };
    }
    return out;
  }

  /** When the last reconcile with the PAP succeeded. */
  lastReconciledAt(): Date | undefined {
    return this.lastReconcile;
  }

  /**
   * Asks the PAP for every active revision and loads what differs. Never rejects: an unreachable
   * PAP is reported by `status()`. Calls made while one runs share it (plus one more pass).
   */
  reconcile(): Promise<void> {
    if (!this.running) return Promise.resolve();
    if (this.reconciling) {
      this.reconcileAgain = true;
      return this.reconciling;
    }
    const run = (async () => {
      do {
        this.reconcileAgain = false;
        await this.reconcileOnce();
      } while (this.reconcileAgain && this.running);
    })();
    this.reconciling = run.finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  /** Offers an activation as if an event had brought it (for tools and tests). */
  offer(activation: Activation, source: SyncSource = 'event'): void {
    if (!this.running || (this.follow && !this.follow.has(activation.bundle))) return;
    const s = this.state(activation.bundle);
    if (s.applied && activation.activationSeq <= s.applied.activationSeq) return;
    if (s.wanted && activation.activationSeq <= s.wanted.activation.activationSeq) return;
    s.wanted = { activation, source };
    clearTimeout(s.retryTimer);
    if (!s.loop) {
      s.loop = this.drive(activation.bundle, s).finally(() => {
        s.loop = undefined;
      });
    }
  }

  private state(bundle: string): BundleState {
    let s = this.bundles.get(bundle);
    if (!s) {
      s = { retryAttempt: 0 };
      this.bundles.set(bundle, s);
    }
    return s;
  }

  private async reconcileOnce(): Promise<void> {
    let active: Activation[];
    try {
      active = await this.source.getActive();
    } catch (err) {
      this.metrics.reconciles.inc({ outcome: 'failed' });
      if (!this.papDown)
        this.logger.warn({ err }, 'reconcile failed: PAP unreachable; serving what is loaded');
      this.papDown = { since: this.papDown?.since ?? Date.now(), message: messageOf(err) };
      return;
    }
    this.metrics.reconciles.inc({ outcome: 'ok' });
    if (this.papDown) this.logger.info({ downMs: Date.now() - this.papDown.since }, 'PAP reachable again');
    this.papDown = undefined;
    this.lastReconcile = new Date();
    for (const activation of active) {
      const applied = this.bundles.get(activation.bundle)?.applied;
      if (
        applied &&
        activation.activationSeq < applied.activationSeq &&
        activation.digest !== applied.digest
      ) {
        // Either an event overtook this answer (harmless) or the PAP's sequence went backwards (a restored database).
        this.logger.warn(
          { bundle: activation.bundle, papSeq: activation.activationSeq, servedSeq: applied.activationSeq },
          'PAP reports an older activation than the one served; keeping the served revision',
        );
      }
      this.offer(activation, 'reconcile');
    }
  }

  private async subscribe(): Promise<void> {
    const bus = this.opts.bus;
    if (!bus || !this.running) return;
    try {
      const sub = await bus.subscribe(TOPICS.policyEvents, (message) => this.onEvent(message), {
        onDisconnect: (err) => {
          this.busDown = { since: Date.now(), message: messageOf(err) };
        },
        onReconnect: () => {
          this.busDown = undefined;
          void this.reconcile();
        },
      });
      if (!this.running) {
        await sub.close();
        return;
      }
      this.subscription = sub;
      this.subscribeAttempt = 0;
      if (this.busDown) this.logger.info('subscribed to policy events');
      this.busDown = undefined;
      // Activations committed before the subscription existed reach us only this way.
      void this.reconcile();
    } catch (err) {
      if (!this.running) return;
      if (!this.busDown)
        this.logger.warn({ reason: messageOf(err) }, 'cannot subscribe to policy events yet; retrying');
      this.busDown = { since: this.busDown?.since ?? Date.now(), message: messageOf(err) };
      const delay = backoffDelay(this.subscribeAttempt++, { initialMs: 500, maxMs: 10_000 });
      this.subscribeTimer = setTimeout(() => {
        this.subscribing = this.subscribe();
      }, delay);
    }
  }

  private onEvent(message: BusMessage): void {
    let activation: Activation;
    try {
      activation = parseActivationEvent(message.value);
    } catch (err) {
      this.metrics.loadFailures.inc({ bundle: message.key, reason: 'invalid_event' });
      this.logger.warn({ err, key: message.key }, 'ignoring a malformed policy event');
      return;
    }
    this.offer(activation, 'event');
  }

  /** Applies the newest wanted activation of one bundle, one at a time, until nothing newer is wanted. */
  private async drive(bundle: string, s: BundleState): Promise<void> {
    while (s.wanted && this.running) {
      const { activation, source } = s.wanted;
      if (!s.applied || activation.activationSeq > s.applied.activationSeq) {
        try {
          await this.apply(activation, source, s);
          s.failure = undefined;
          s.retryAttempt = 0;
        } catch (err) {
          this.failed(bundle, s, activation, source, err);
        }
      }
      if (s.wanted?.activation === activation) s.wanted = undefined;
    }
  }

  private failed(
    bundle: string,
    s: BundleState,
    activation: Activation,
    source: SyncSource,
    err: unknown,
  ): void {
    const f = err instanceof SyncFailure ? err : new SyncFailure('load_failed', messageOf(err), false, err);
    s.failure = { reason: f.reason, message: f.message, revision: activation.revision };
    this.metrics.loadFailures.inc({ bundle, reason: f.reason });
    const log = {
      err: f.cause ?? f,
      bundle,
      revision: activation.revision,
      digest: activation.digest,
      reason: f.reason,
    };
    if (f.transient) {
      this.logger.warn(log, 'could not fetch a revision; retrying, the previous revision keeps serving');
      const delay = backoffDelay(s.retryAttempt++, {
        initialMs: 250,
        maxMs: Math.min(10_000, this.reconcileIntervalMs),
      });
      s.retryTimer = setTimeout(() => {
        // Cleared `wanted` first (drive does it on return), so the same activation is accepted again.
        this.offer(activation, source);
      }, delay);
      s.retryTimer.unref();
    } else {
      this.logger.error(
        { ...log, err: f.cause ?? f },
        'revision refused; the previous revision keeps serving',
      );
    }
  }

  private async apply(activation: Activation, source: SyncSource, s: BundleState): Promise<void> {
    if (s.applied?.digest === activation.digest) {
      // Re-activation of the content already served: only the sequence moves.
      s.applied = { ...activation, source: s.applied.source, loadedAt: s.applied.loadedAt };
      return;
    }
    let archive: Buffer;
    try {
      archive = await this.source.fetchBundle(activation.bundle, activation.digest, {
        maxBytes: this.maxBundleBytes,
        signal: this.abort.signal,
        ...(this.opts.fetchTimeoutMs === undefined ? {} : { deadlineMs: this.opts.fetchTimeoutMs }),
      });
    } catch (err) {
      if (err instanceof PortcullisError && err.code === 'payload_too_large') {
        throw new SyncFailure('too_large', err.message, false, err);
      }
      throw new SyncFailure('fetch_failed', `FetchBundle failed: ${messageOf(err)}`, true, err);
    }
    if (!this.running) return;
    try {
      verifyDigest(archive, activation.digest);
    } catch (err) {
      throw new SyncFailure(
        'digest_mismatch',
        `the fetched archive does not match digest ${activation.digest}`,
        false,
        err,
      );
    }
    await this.install(activation, archive, source, s);
    if (this.cache) {
      await this.cache.write({ activation, archive }).catch((err: unknown) => {
        this.logger.warn(
          { err, bundle: activation.bundle },
          'could not write the bundle cache; serving anyway',
        );
      });
    }
  }

  /** Unpacks a verified archive, loads it into the engine and records it as served. */
  private async install(
    activation: Activation,
    archive: Buffer,
    source: SyncSource,
    s: BundleState,
  ): Promise<void> {
    let revision: Revision;
    try {
      // Data as checked JSON text, never parsed here: the engine parses it inside the module.
      const read = readBundleArchive(archive, {
        maxBytes: this.maxBundleBytes,
        maxFiles: MAX_FILES,
        dataAs: 'json',
      });
      if (!read.wasm) throw new PortcullisError('invalid_bundle', 'the archive holds no policy.wasm');
      revision = {
        bundle: activation.bundle,
        revision: activation.revision,
        digest: activation.digest,
        wasm: read.wasm,
        data: undefined,
        dataJson: read.dataJson,
        entrypoints: read.entrypoints ?? activation.entrypoints ?? [],
      };
    } catch (err) {
      throw new SyncFailure('invalid_bundle', `cannot unpack the archive: ${messageOf(err)}`, false, err);
    }
    try {
      await this.opts.engine.load(revision);
    } catch (err) {
      throw new SyncFailure('load_failed', `the engine refused the revision: ${messageOf(err)}`, false, err);
    }
    const previous = s.applied;
    s.applied = { ...activation, source, loadedAt: new Date() };
    this.collector.afterSwap();
    if (previous) {
      this.metrics.loadedInfo.remove({
        bundle: activation.bundle,
        revision: String(previous.revision),
        digest: previous.digest,
      });
    }
    this.metrics.loadedInfo.set(
      { bundle: activation.bundle, revision: String(activation.revision), digest: activation.digest },
      1,
    );
    this.metrics.loads.inc({ bundle: activation.bundle, source });
    let lagMs: number | undefined;
    if (source !== 'cache' && activation.activatedAt) {
      lagMs = Math.max(0, Date.now() - activation.activatedAt.getTime());
      this.metrics.propagationLag.observe({ bundle: activation.bundle }, lagMs / 1000);
    }
    this.logger.info(
      {
        bundle: activation.bundle,
        revision: activation.revision,
        digest: activation.digest,
        activationSeq: activation.activationSeq,
        source,
        ...(lagMs === undefined ? {} : { lagMs }),
      },
      'revision loaded',
    );
  }

  private async loadCache(): Promise<void> {
    if (!this.cache) return;
    let read: Awaited<ReturnType<BundleCache['readAll']>>;
    try {
      read = await this.cache.readAll();
    } catch (err) {
      this.logger.warn({ err, dir: this.cache.dir }, 'cannot read the bundle cache; starting empty');
      return;
    }
    for (const { file, reason } of read.damaged) {
      this.metrics.loadFailures.inc({ bundle: '', reason: 'cache_damaged' });
      this.logger.warn({ file, reason }, 'skipping a damaged bundle cache entry');
    }
    for (const { activation, archive } of read.entries) {
      if (this.follow && !this.follow.has(activation.bundle)) continue;
      const s = this.state(activation.bundle);
      if (s.applied && s.applied.activationSeq >= activation.activationSeq) continue;
      try {
        await this.install(activation, archive, 'cache', s);
      } catch (err) {
        const f =
          err instanceof SyncFailure ? err : new SyncFailure('load_failed', messageOf(err), false, err);
        this.metrics.loadFailures.inc({ bundle: activation.bundle, reason: 'cache_damaged' });
        this.logger.warn(
          { err: f, bundle: activation.bundle },
          'cannot load the cached revision; waiting for the PAP',
        );
      }
    }
  }
}
