// The live signing authority of one CA replica: loaded from Postgres, kept in step with other replicas, rotated and pruned.
import { EventEmitter } from 'node:events';
import {
  type AuthorityState,
  activatePreparedRoot,
  createAuthority,
  type Issuer,
  importPluggedAuthority,
  openAuthority,
  prepareRootRotation,
  pruneRetiredRoots,
  readCacertsDirectory,
  readCertificate,
  rotateRoot,
  rotateToPluggedAuthority,
} from '@portcullis/pki';
import { type Component, type ComponentStatus, ConfigError, type Logger } from '@portcullis/runtime';
import type { AuthorityStore, StoredAuthority } from './authority-store.ts';
import type { CaConfig } from './config.ts';

export type RotationMode = 'rotate' | 'prepare' | 'activate';

/** What issuance uses: immutable, replaced as a whole when the authority changes. */
export interface ActiveAuthority {
  readonly state: AuthorityState;
  readonly version: number;
  readonly issuer: Issuer;
  /** PEM roots, oldest first. */
  readonly bundlePem: readonly string[];
}

export interface CaAuthorityOptions {
  readonly config: CaConfig;
  readonly store: AuthorityStore;
  readonly logger: Logger;
  /** Milliseconds since the epoch; injectable so tests can move past an overlap. */
  readonly now?: () => number;
}

const seconds = (ms: number) => Math.floor(ms / 1000);

/**
 * Contract: after `start()` resolves, `current()` always returns a usable authority; a change made
 * here or by another replica (seen at the next maintenance tick) replaces it atomically and emits
 * `changed` once. Maintenance failures (database down) keep the last authority and report WARN.
 */
export class CaAuthority extends EventEmitter<{ changed: [ActiveAuthority] }> implements Component {
  readonly name = 'authority';
  private readonly options: CaAuthorityOptions;
  private readonly now: () => number;
  private active: ActiveAuthority | undefined;
  private timer: NodeJS.Timeout | undefined;
  private problem: string | undefined;
  private maintaining: Promise<void> | undefined;

  constructor(options: CaAuthorityOptions) {
    super();
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    const { config, store } = this.options;
    let stored = await store.loadOrCreate(() => this.createState(), 'ca');
    if (stored.state.trustDomain !== config.CA_TRUST_DOMAIN) {
      throw new ConfigError(
        'CA_TRUST_DOMAIN',
        `is ${JSON.stringify(config.CA_TRUST_DOMAIN)} but the stored authority belongs to ${JSON.stringify(stored.state.trustDomain)}`,
      );
    }
    if (config.CA_CERTS_DIR !== undefined) stored = await this.followPluggedCerts(config.CA_CERTS_DIR);
    await this.install(stored);
    this.schedule();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.maintaining;
  }

  status(): ComponentStatus {
    if (this.active === undefined) return { state: 'NOT_READY', message: 'no authority loaded yet' };
    return this.problem === undefined ? { state: 'OK' } : { state: 'WARN', message: this.problem };
  }

  current(): ActiveAuthority {
    if (this.active === undefined) throw new Error('the CA authority is not loaded yet');
    return this.active;
  }

  /**
   * Root rotation. `rotate` does both phases at once; `prepare` publishes a new root without signing
   * with it; `activate` makes the prepared root sign and starts the old root's overlap.
   */
  async rotate(
    mode: RotationMode,
    actor: string,
    overlapMs?: number,
    onlyIf?: (state: AuthorityState) => boolean,
  ): Promise<ActiveAuthority> {
    const { config, store } = this.options;
    const overlapSeconds = seconds(overlapMs ?? config.CA_ROTATION_OVERLAP);
    const now = this.now();
    const generated = {
      secret: this.secret(),
      keyType: config.CA_SIGNING_KEY_TYPE,
      intermediate: config.CA_INTERMEDIATE,
      rootTtlSeconds: seconds(config.CA_ROOT_TTL),
      now,
    };
    const stored = await store.update(async ({ state }) => {
      // Checked again under the lock: another replica may have rotated since the caller looked.
      if (onlyIf !== undefined && !onlyIf(state)) return undefined;
      const next =
        mode === 'rotate'
          ? await rotateRoot(state, { ...generated, overlapSeconds })
          : mode === 'prepare'
            ? await prepareRootRotation(state, generated)
            : activatePreparedRoot(state, { overlapSeconds, now });
      return {
        state: next,
        audit: {
          action: `root.${mode}`,
          actor,
          details: { bundleSequence: next.bundleSequence, roots: next.roots.length, overlapSeconds },
        },
      };
    });
    return this.install(stored);
  }

  /** One maintenance pass now (tests call it instead of waiting for the timer). */
  maintain(): Promise<void> {
    this.maintaining ??= this.maintainOnce().finally(() => {
      this.maintaining = undefined;
    });
    return this.maintaining;
  }

  private async maintainOnce(): Promise<void> {
    try {
      const { store } = this.options;
      const version = await store.version();
      let stored: StoredAuthority | undefined =
        version !== undefined && version !== this.active?.version ? await store.read() : undefined;
      if (this.needsPruning(stored?.state ?? this.current().state)) stored = await this.prune();
      if (this.rotationDue(stored?.state ?? this.current().state)) {
        await this.rotate('rotate', 'ca-schedule', undefined, (state) => this.rotationDue(state));
        stored = undefined;
      }
      if (stored !== undefined && stored.version !== this.active?.version) await this.install(stored);
      this.problem = undefined;
    } catch (error) {
      this.problem = `maintenance failed: ${error instanceof Error ? error.message : String(error)}`;
      this.options.logger.warn({ err: error }, 'CA authority maintenance failed');
    }
  }

  private needsPruning(state: AuthorityState): boolean {
    const now = this.now();
    return state.roots.some((root) => root.retireAt !== undefined && Date.parse(root.retireAt) <= now);
  }

  private prune(): Promise<StoredAuthority> {
    return this.options.store.update(async ({ state }) => {
      const next = pruneRetiredRoots(state, this.now());
      // Another replica may have pruned first: then there is nothing left to remove.
      if (next.roots.length === state.roots.length) return undefined;
      return {
        state: next,
        audit: {
          action: 'root.prune',
          actor: 'ca-schedule',
          details: { removed: state.roots.length - next.roots.length, bundleSequence: next.bundleSequence },
        },
      };
    });
  }

  /** A generated root is rotated when it has less than CA_ROOT_ROTATE_BEFORE left; plugged ones are the operator's. */
  private rotationDue(state: AuthorityState): boolean {
    const before = this.options.config.CA_ROOT_ROTATE_BEFORE;
    if (before <= 0 || state.active.origin !== 'generated' || state.prepared !== undefined) return false;
    const rootPem = state.active.chainPem[state.active.chainPem.length - 1] ?? '';
    const root = readCertificate(rootPem, 'ca_certificate_invalid');
    return root.notAfter.getTime() - this.now() < before;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.maintain().finally(() => {
        if (this.timer !== undefined) this.schedule();
      });
    }, this.options.config.CA_MAINTENANCE_INTERVAL);
    this.timer.unref();
  }

  private secret(): string {
    const secret = this.options.config.CA_KEY_ENCRYPTION_KEY;
    if (secret === undefined) throw new ConfigError('CA_KEY_ENCRYPTION_KEY', 'must be set');
    return secret;
  }

  private async createState(): Promise<AuthorityState> {
    const { config } = this.options;
    const now = this.now();
    if (config.CA_CERTS_DIR !== undefined) {
      return importPluggedAuthority({
        trustDomain: config.CA_TRUST_DOMAIN,
        files: await readCacertsDirectory(config.CA_CERTS_DIR),
        secret: this.secret(),
        now,
      });
    }
    return createAuthority({
      trustDomain: config.CA_TRUST_DOMAIN,
      secret: this.secret(),
      keyType: config.CA_SIGNING_KEY_TYPE,
      intermediate: config.CA_INTERMEDIATE,
      rootTtlSeconds: seconds(config.CA_ROOT_TTL),
      now,
    });
  }

  /** Like Istio with a mounted `cacerts`: a changed ca-cert.pem becomes the signing CA, old roots overlap. */
  private async followPluggedCerts(dir: string): Promise<StoredAuthority> {
    const files = await readCacertsDirectory(dir);
    const caCert = readCertificate(files.caCertPem, 'ca_certificate_invalid');
    return this.options.store.update(async ({ state }) => {
      const signing = readCertificate(state.active.chainPem[0] ?? '', 'ca_certificate_invalid');
      if (signing.der.equals(caCert.der)) return undefined;
      const next = await rotateToPluggedAuthority(state, {
        files,
        secret: this.secret(),
        overlapSeconds: seconds(this.options.config.CA_ROTATION_OVERLAP),
        now: this.now(),
      });
      return { state: next, audit: { action: 'root.plug', actor: 'ca', details: { dir } } };
    });
  }

  private async install(stored: StoredAuthority): Promise<ActiveAuthority> {
    if (this.active?.version === stored.version) return this.active;
    const { config } = this.options;
    const opened = await openAuthority(stored.state, {
      secret: this.secret(),
      defaultTtlSeconds: seconds(config.CA_DEFAULT_TTL),
      maxTtlSeconds: seconds(config.CA_MAX_TTL),
      maxCsrBytes: config.CA_MAX_CSR_BYTES,
      now: this.now,
    });
    // Two installs can race (a rotation and a maintenance tick); the newer version wins.
    if (this.active !== undefined && this.active.version > stored.version) return this.active;
    this.active = {
      state: opened.state,
      version: stored.version,
      issuer: opened.issuer,
      bundlePem: opened.trustBundlePem,
    };
    this.emit('changed', this.active);
    return this.active;
  }
}
