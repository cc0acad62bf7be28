// Holds the active revision of every bundle and routes decisions to it; new revisions swap in atomically.
import { EngineError } from './engine-error.ts';
import { normalizeEntrypoint } from './entrypoint-path.ts';
import {
  type Decision,
  type JsonDecision,
  type LoadedPolicy,
  type LoadOptions,
  loadRevision,
  type Revision,
} from './loaded-policy.ts';
import type { InstanceRemains } from './wasm-policy.ts';

export interface LoadedInfo {
  revision: number;
  digest: string;
  loadedAt: Date;
  entrypoints: readonly string[];
}

interface State {
  readonly bundles: ReadonlyMap<string, LoadedPolicy>;
  /** Normalized entrypoint → the policy serving it. */
  readonly routes: ReadonlyMap<string, LoadedPolicy>;
}

/**
 * The decision engine of one process (PDP, ext-authz adapter, proxy). What callers may rely on:
 *
 * - **Atomic swap.** `load` instantiates the new revision (compile, instantiate, set data) before touching
 *   what is served; the switch is one reference assignment. An `evaluate` sees either the old or the new
 *   revision of a bundle, never a mix, and every decision names the revision that made it.
 * - **No dropped evaluations.** `evaluate` is synchronous, so an evaluation that started on the old instance
 *   finishes on it before the swap. The old instance is then retired: its linear memory (zeroed first) and,
 *   when the bytes are the same, its compiled module serve the bundle's next revision, so a bundle holds at
 *   most two memories however often it swaps, instead of one per revision until V8's GC gets to them.
 * - **Idempotence.** Loading the digest that is already active for the bundle is a no-op returning `false`
 *   (the active revision number is kept: the same digest is the same content).
 * - **Order.** Loads of one bundle take effect in the order `load` was called, whatever order their
 *   compilations finish in; a failed load leaves the previous revision serving. Loads of different bundles
 *   proceed independently.
 * - **Routing.** A decision path is served by the one bundle that declares it as an entrypoint; a revision
 *   declaring an entrypoint another bundle serves is rejected (`entrypoint_conflict`), like OPA's bundle roots.
 * - **Thread affinity.** An engine and its instances belong to the event loop that created them; use one
 *   engine per worker thread.
 */
export class PolicyEngine {
  private state: State = { bundles: new Map(), routes: new Map() };
  /** Tail of each bundle's queue of loads; the entry is deleted when its last load settles. */
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly options: LoadOptions;
  /** Per bundle, what its last retired revision left for the next load to reuse. */
  private readonly spares = new Map<string, InstanceRemains>();

  constructor(options: LoadOptions = {}) {
    this.options = options;
  }

  /** Loads `rev` and makes it the active revision of `rev.bundle`; `false` when that digest is already active. */
  load(rev: Revision): Promise<boolean> {
    const previous = this.pending.get(rev.bundle);
    const run =
      previous === undefined
        ? this.apply(rev)
        : previous.then(
            () => this.apply(rev),
            () => this.apply(rev),
          );
    this.pending.set(rev.bundle, run);
    const cleanup = (): void => {
      if (this.pending.get(rev.bundle) === run) this.pending.delete(rev.bundle);
    };
    run.then(cleanup, cleanup);
    return run;
  }

  private async apply(rev: Revision): Promise<boolean> {
    if (this.state.bundles.get(rev.bundle)?.digest === rev.digest) return false;
    // Loads of one bundle run one at a time (see `load`), so nothing else uses the spare meanwhile; a failed
    // load leaves it in place (it is zeroed before every use).
    const policy = await loadRevision(rev, this.options, this.spares.get(rev.bundle));
    // Re-read state: other bundles may have swapped while this one compiled.
    const { bundles } = this.state;
    for (const ep of policy.entrypoints) {
      const owner = this.state.routes.get(ep);
      if (owner !== undefined && owner.bundle !== rev.bundle) {
        throw new EngineError('entrypoint_conflict', `${ep} is already served by bundle ${owner.bundle}`, {
          details: { entrypoint: ep, bundle: owner.bundle },
        });
      }
    }
    const next = new Map(bundles);
    next.set(rev.bundle, policy);
    this.state = { bundles: next, routes: routesOf(next) };
    const remains = bundles.get(rev.bundle)?.retire();
    if (remains === undefined) this.spares.delete(rev.bundle);
    else this.spares.set(rev.bundle, remains);
    return true;
  }

  /** Stops serving a bundle (after any pending loads of it); `false` when it was not loaded. */
  async unload(bundle: string): Promise<boolean> {
    await this.pending.get(bundle)?.catch(() => undefined);
    if (!this.state.bundles.has(bundle)) return false;
    const old = this.state.bundles.get(bundle);
    const next = new Map(this.state.bundles);
    next.delete(bundle);
    this.state = { bundles: next, routes: routesOf(next) };
    old?.retire();
    this.spares.delete(bundle);
    return true;
  }

  /** Evaluates the decision at `path` (`envoy/authz/allow`, `data.envoy.authz.allow`, `/envoy/authz/allow/`). */
  evaluate(path: string, input?: unknown): Decision {
    const [policy, entrypoint] = this.route(path);
    return policy.evaluate(entrypoint, input);
  }

  /** Like `evaluate` with input and result as JSON text (exact big integers, no re-serialization). */
  evaluateJson(path: string, inputJson?: string): JsonDecision {
    const [policy, entrypoint] = this.route(path);
    return policy.evaluateJson(entrypoint, inputJson);
  }

  /** The policy serving `path` now; it evaluates until the next load (or unload) of its bundle retires it. */
  policyFor(path: string): LoadedPolicy | undefined {
    const { routes } = this.state;
    return routes.get(path) ?? routes.get(normalizeEntrypoint(path));
  }

  /** Loads accepted but not yet settled, over all bundles (for readiness reporting). */
  pendingLoads(): number {
    return this.pending.size;
  }

  /** Active revision per bundle. */
  loaded(): Record<string, LoadedInfo> {
    const out: Record<string, LoadedInfo> = {};
    for (const [bundle, p] of this.state.bundles) {
      out[bundle] = {
        revision: p.revision,
        digest: p.digest,
        loadedAt: p.loadedAt,
        entrypoints: p.entrypoints,
      };
    }
    return out;
  }

  private route(path: string): [LoadedPolicy, string] {
    const { routes } = this.state;
    // Callers usually pass the same canonical string every time: try it before normalizing.
    let policy = routes.get(path);
    if (policy !== undefined) return [policy, path];
    const entrypoint = normalizeEntrypoint(path);
    policy = routes.get(entrypoint);
    if (policy === undefined) {
      throw new EngineError('entrypoint_not_found', `no loaded bundle serves ${path}`, { details: { path } });
    }
    return [policy, entrypoint];
  }
}

function routesOf(bundles: ReadonlyMap<string, LoadedPolicy>): Map<string, LoadedPolicy> {
  const routes = new Map<string, LoadedPolicy>();
  for (const policy of bundles.values()) for (const ep of policy.entrypoints) routes.set(ep, policy);
  return routes;
}
