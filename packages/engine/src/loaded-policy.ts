// A revision of a bundle, and that revision instantiated with its data and our builtins, ready to evaluate.

import type { BuiltinTable } from './builtins/builtin-types.ts';
import { HOST_BUILTINS } from './builtins/index.ts';
import { EngineError } from './engine-error.ts';
import { normalizeEntrypoint } from './entrypoint-path.ts';
import { type InstanceRemains, WasmPolicy } from './wasm-policy.ts';

/** An immutable, compiled revision of a bundle as the PAP stores and the PDPs fetch it. */
export interface Revision {
  bundle: string;
  revision: number;
  /** sha256 hex of the OPA bundle tar.gz bytes; the identity of the content. */
  digest: string;
  wasm: Uint8Array;
  data: unknown;
  /**
   * `data` already serialized as UTF-8 JSON; when present it is loaded instead of `data`, which may then be
   * left undefined (the PDP's worker threads get the text rather than a clone of the object each).
   */
  dataJson?: string | Uint8Array;
  /** Decisions this revision serves (`envoy/authz/allow`); empty means every entrypoint the module has. */
  entrypoints: string[];
}

export interface LoadOptions {
  /** Host builtins; defaults to the engine's full set. */
  builtins?: BuiltinTable;
  /** Raise `builtin_error` instead of OPA's default (a failing builtin call is undefined). */
  strictBuiltinErrors?: boolean;
  /** Receives Rego `print()` output. */
  print?: (message: string) => void;
}

/** One decision. `result` is `undefined` when the policy leaves the decision undefined (distinct from false). */
export interface Decision {
  result: unknown;
  bundle: string;
  revision: number;
  digest: string;
  /** Wall time of the WASM evaluation, in nanoseconds. */
  evalNs: number;
}

/** A decision whose result is kept as JSON text (exact for integers beyond 2^53; no parse on the way out). */
export interface JsonDecision extends Omit<Decision, 'result'> {
  /** The result as JSON text, or `undefined` when undefined. */
  resultJson: string | undefined;
}

const RESULT_PREFIX = '[{"result":';

/**
 * A revision instantiated in its own WebAssembly instance. Evaluation is synchronous and not reentrant; one
 * instance belongs to the thread (event loop) that loaded it.
 */
export class LoadedPolicy {
  readonly bundle: string;
  readonly revision: number;
  readonly digest: string;
  readonly loadedAt: Date;
  /** Normalized entrypoints this policy serves. */
  readonly entrypoints: readonly string[];
  /** Builtins the module imports from the host. */
  readonly requiredBuiltins: readonly string[];
  private readonly ids: ReadonlyMap<string, number>;
  private readonly wasm: WasmPolicy;

  constructor(rev: Revision, wasm: WasmPolicy) {
    this.bundle = rev.bundle;
    this.revision = rev.revision;
    this.digest = rev.digest;
    this.wasm = wasm;
    this.loadedAt = new Date();
    this.requiredBuiltins = wasm.requiredBuiltins;
    const declared =
      rev.entrypoints.length > 0 ? rev.entrypoints.map(normalizeEntrypoint) : [...wasm.entrypoints.keys()];
    const ids = new Map<string, number>();
    for (const ep of declared) {
      const id = wasm.entrypoints.get(ep);
      if (id === undefined) {
        throw new EngineError('entrypoint_not_found', `entrypoint ${ep} is not compiled into the module`, {
          details: { entrypoint: ep, compiled: [...wasm.entrypoints.keys()] },
        });
      }
      ids.set(ep, id);
    }
    this.ids = ids;
    this.entrypoints = [...ids.keys()];
  }

  /**
   * Ends this revision's service: its instance evaluates nothing more (calls throw `bundle_not_loaded`) and
   * its memory and module go to the next revision of the bundle. The engine calls this when a load replaces
   * or unloads it, which is safe because evaluation is synchronous: nothing is running on it then.
   */
  retire(): InstanceRemains | undefined {
    return this.wasm.retire();
  }

  /** Whether this policy serves the (normalized) entrypoint. */
  serves(entrypoint: string): boolean {
    return this.ids.has(entrypoint);
  }

  evaluate(entrypoint: string, input?: unknown): Decision {
    const { resultJson, ...rest } = this.evaluateJson(entrypoint, encodeInput(input));
    return { result: resultJson === undefined ? undefined : JSON.parse(resultJson), ...rest };
  }

  /** Like `evaluate` with the input and result as JSON text (the input is not validated beyond parsing). */
  evaluateJson(entrypoint: string, inputJson?: string): JsonDecision {
    let id = this.ids.get(entrypoint);
    if (id === undefined) {
      id = this.ids.get(normalizeEntrypoint(entrypoint));
      if (id === undefined) {
        throw new EngineError('entrypoint_not_found', `${this.bundle} does not serve ${entrypoint}`, {
          details: { entrypoint, bundle: this.bundle },
        });
      }
    }
    const t0 = performance.now();
    const set = this.wasm.evaluateJson(id, inputJson);
    const evalNs = Math.round((performance.now() - t0) * 1e6);
    return {
      resultJson: extractResult(set),
      bundle: this.bundle,
      revision: this.revision,
      digest: this.digest,
      evalNs,
    };
  }

  /** OPA's result set as JSON text (`[]` or `[{"result":…}]`), for callers that want it verbatim. */
  evaluateResultSet(entrypoint: string, inputJson?: string): string {
    const id = this.ids.get(normalizeEntrypoint(entrypoint));
    if (id === undefined)
      throw new EngineError('entrypoint_not_found', `${this.bundle} does not serve ${entrypoint}`);
    return this.wasm.evaluateJson(id, inputJson);
  }
}

export function encodeInput(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  try {
    return JSON.stringify(input);
  } catch (cause) {
    throw new EngineError('invalid_input', `input is not JSON-serializable: ${(cause as Error).message}`, {
      cause,
    });
  }
}

// opa_eval writes exactly `[]` or `[{"result":<value>}]`; slicing avoids parsing the whole set.
function extractResult(set: string): string | undefined {
  if (set.startsWith(RESULT_PREFIX) && set.endsWith('}]')) return set.slice(RESULT_PREFIX.length, -2);
  if (set === '[]') return undefined;
  const parsed = JSON.parse(set) as { result?: unknown }[];
  if (parsed.length === 0 || !('result' in parsed[0]!)) return undefined;
  return JSON.stringify(parsed[0]!.result);
}

/**
 * Instantiates a revision: compiles the module, checks its builtins and entrypoints, and sets its data.
 * `reuse` is what a retired revision left (its memory is overwritten: nothing may evaluate on it any more).
 */
export async function loadRevision(
  rev: Revision,
  options: LoadOptions = {},
  reuse?: InstanceRemains,
): Promise<LoadedPolicy> {
  const wasm = await WasmPolicy.instantiate(rev.wasm, {
    builtins: options.builtins ?? HOST_BUILTINS,
    ...(options.strictBuiltinErrors === undefined
      ? {}
      : { strictBuiltinErrors: options.strictBuiltinErrors }),
    ...(options.print === undefined ? {} : { print: options.print }),
    ...(reuse === undefined ? {} : { reuse }),
  });
  if (rev.dataJson !== undefined) wasm.setDataJson(rev.dataJson);
  else wasm.setData(rev.data);
  return new LoadedPolicy(rev, wasm);
}
