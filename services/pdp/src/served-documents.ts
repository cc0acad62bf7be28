// The documents a PDP serves — compiled entrypoints and bundle data — and how a Data API path maps onto them.
import { normalizeEntrypoint, type Revision } from '@portcullis/engine';
import type { RevisionTarget } from '@portcullis/policy-sync';
import type { Evaluator } from './serving/evaluator.ts';

/** A bundle as it serves now. */
export interface ServedBundle {
  readonly bundle: string;
  readonly revision: number;
  readonly digest: string;
  readonly data: unknown;
  /** Normalized (`envoy/authz/allow`). */
  readonly entrypoints: readonly string[];
}

export interface RuleRef {
  bundle: ServedBundle;
  entrypoint: string;
}

/**
 * How a path is answered.
 * - `rule`: the path is a compiled entrypoint, or lies inside one's result (`rest` descends into it).
 * - `data`: the path is inside a bundle's data and no entrypoint lies beneath it.
 * - `tree`: entrypoints lie beneath the path (a package, or the root): the answer is an object
 *   assembled from their results and the data beneath it. OPA would include every rule there;
 *   a WASM module only exposes its entrypoints, so this view is partial (`partial` says so).
 * - `none`: nothing is served at the path: the document is undefined.
 */
export type DocumentPlan =
  | { kind: 'rule'; rule: RuleRef; rest: string[] }
  | { kind: 'data'; bundle: ServedBundle; value: unknown }
  | { kind: 'tree'; prefix: string[]; rules: (RuleRef & { at: string[] })[]; data: unknown[] }
  | { kind: 'none' };

interface Index {
  bundles: ReadonlyMap<string, ServedBundle>;
  rules: ReadonlyMap<string, RuleRef>;
  /** Most segments of any entrypoint: no longer prefix of a path needs looking up. */
  depth: number;
}

/** Reads `value` at `path` (object keys, array indices) the way a Rego reference does; undefined when absent. */
export function descend(value: unknown, path: readonly string[]): unknown {
  let node = value;
  for (const key of path) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9]\d*)$/.test(key)) return undefined;
      node = node[Number(key)];
    } else if (typeof node === 'object' && node !== null && Object.hasOwn(node, key)) {
      node = (node as Record<string, unknown>)[key];
    } else {
      return undefined;
    }
  }
  return node;
}

/**
 * The revision's data as the Data API reads it. Data that arrives as text (from PolicySync) is parsed
 * on the first request that reads it, not at the swap: decisions are made in the engine, which has
 * its own copy, so a PDP whose clients never read data through the Data API never builds the object.
 */
function dataOf(rev: Revision): { readonly data: unknown } {
  const json = rev.dataJson;
  if (json === undefined) return { data: rev.data };
  let parsed: { value: unknown } | undefined;
  return {
    get data(): unknown {
      parsed ??= {
        value: JSON.parse(
          typeof json === 'string'
            ? json
            : Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString(),
        ),
      };
      return parsed.value;
    },
  };
}

/**
 * The revision target PolicySync feeds: loads into the evaluator, then records what the bundle
 * serves. The index is replaced (never mutated) right after the evaluator swapped, in the same
 * microtask chain, so a request sees the index and the engine of one revision.
 */
export class ServedDocuments implements RevisionTarget {
  private index: Index = { bundles: new Map(), rules: new Map(), depth: 0 };

  constructor(private readonly evaluator: Evaluator) {}

  async load(rev: Revision): Promise<boolean> {
    const changed = await this.evaluator.load(rev);
    // No declared entrypoints means every entrypoint compiled into the module; only the engine knows them.
    const entrypoints =
      rev.entrypoints.length > 0
        ? rev.entrypoints.map(normalizeEntrypoint)
        : this.evaluator.entrypoints(rev.bundle);
    const served: ServedBundle = {
      bundle: rev.bundle,
      revision: rev.revision,
      digest: rev.digest,
      ...dataOf(rev),
      entrypoints,
    };
    const bundles = new Map(this.index.bundles);
    bundles.set(rev.bundle, served);
    const rules = new Map<string, RuleRef>();
    let depth = 0;
    for (const b of bundles.values()) {
      for (const entrypoint of b.entrypoints) {
        rules.set(entrypoint, { bundle: b, entrypoint });
        depth = Math.max(depth, entrypoint.split('/').length);
      }
    }
    this.index = { bundles, rules, depth };
    return changed;
  }

  /** Bundles serving now. */
  bundles(): ServedBundle[] {
    return [...this.index.bundles.values()];
  }

  /** The rule serving exactly this entrypoint, if any. */
  rule(entrypoint: string): RuleRef | undefined {
    return this.index.rules.get(entrypoint);
  }

  /** Maps path segments (`['envoy', 'authz', 'allow']`; `[]` is the root) to how they are answered. */
  plan(segments: readonly string[]): DocumentPlan {
    const { rules, bundles, depth } = this.index;
    // A segment holding '/' (sent as %2F) is one key: joined, it would pose as two.
    if (!segments.some((s) => s.includes('/'))) {
      // Longest prefix first, so the common case (the path is exactly an entrypoint) is one lookup.
      for (let k = Math.min(segments.length, depth); k > 0; k--) {
        const rule = rules.get(k === segments.length ? segments.join('/') : segments.slice(0, k).join('/'));
        if (rule) return { kind: 'rule', rule, rest: segments.slice(k) };
      }
    }
    const prefix = segments.length === 0 ? '' : `${segments.join('/')}/`;
    const beneath: (RuleRef & { at: string[] })[] = [];
    for (const [entrypoint, rule] of rules) {
      if (entrypoint.startsWith(prefix))
        beneath.push({ ...rule, at: entrypoint.slice(prefix.length).split('/') });
    }
    const data: unknown[] = [];
    for (const b of bundles.values()) {
      const v = descend(b.data, segments);
      if (v !== undefined) data.push(v);
    }
    if (beneath.length > 0) return { kind: 'tree', prefix: [...segments], rules: beneath, data };
    if (data.length > 0) {
      for (const b of bundles.values()) {
        const value = descend(b.data, segments);
        if (value !== undefined) return { kind: 'data', bundle: b, value };
      }
    }
    if (segments.length === 0) return { kind: 'tree', prefix: [], rules: [], data: [] };
    return { kind: 'none' };
  }
}
