// A compiled OPA policy.wasm instance (ABI 1.2+): data loading, evaluation and host-builtin dispatch.
//
// We speak the OPA WASM ABI directly instead of going through @open-policy-agent/opa-wasm's LoadedPolicy:
// the SDK resolves its own JS builtins (sprintf via sprintf-js, yaml, regex.split) before custom ones, so
// OPA-exact replacements could not take effect; it also re-encodes input through a fresh TextEncoder buffer
// and scans results byte by byte in JS on every call, which matters at the PDP's microsecond budget.
import type { BuiltinDef, BuiltinTable, EvalContext } from './builtins/builtin-types.ts';
import { EngineError } from './engine-error.ts';
import { parseValue, serializeValue } from './rego-json.ts';
import {
  requiredMemoryPages,
  WA,
  type WasmGlobal,
  type WasmImports,
  type WasmInstance,
  type WasmMemory,
  type WasmModule,
} from './webassembly-api.ts';

interface OpaExports {
  memory: WasmMemory;
  opa_malloc(size: number): number;
  opa_json_parse(addr: number, len: number): number;
  opa_value_parse(addr: number, len: number): number;
  opa_json_dump(addr: number): number;
  opa_value_dump(addr: number): number;
  opa_heap_ptr_get(): number;
  opa_heap_ptr_set(addr: number): void;
  opa_eval(
    reserved: number,
    entrypoint: number,
    data: number,
    input: number,
    inputLen: number,
    heap: number,
    format: number,
  ): number;
  builtins(): number;
  entrypoints(): number;
  opa_wasm_abi_version?: WasmGlobal;
  opa_wasm_abi_minor_version?: WasmGlobal;
}

const MEMO_ENTRIES = 1024;

const REQUIRED_EXPORTS = [
  'opa_malloc',
  'opa_json_parse',
  'opa_value_parse',
  'opa_json_dump',
  'opa_value_dump',
  'opa_heap_ptr_get',
  'opa_heap_ptr_set',
  'opa_eval',
  'builtins',
  'entrypoints',
] as const;

export interface WasmPolicyOptions {
  /** Host builtins; a module importing one that is missing here fails to load with `builtin_unsupported`. */
  builtins: BuiltinTable;
  /** Throw `builtin_error` from evaluate when a builtin fails, instead of OPA's default (the call is undefined). */
  strictBuiltinErrors?: boolean;
  /** Receives Rego `print()` output; dropped when absent. */
  print?: (message: string) => void;
  /** Initial linear memory in 64 KiB pages (grows on demand). */
  initialMemoryPages?: number;
  /** What a retired instance of the same bundle left: its memory is reused, its module too if the bytes match. */
  reuse?: InstanceRemains;
}

/**
 * The linear memory and compiled module of an instance that no longer evaluates. Reusing them for the next
 * revision keeps one spare memory per bundle instead of a new one per swap (V8 frees an unreferenced
 * memory only when its GC gets to it, which under swaps of a large bundle can be many revisions later).
 */
export interface InstanceRemains {
  readonly memory: WasmMemory;
  readonly module: WasmModule;
  readonly wasm: Uint8Array;
}

/** Names of the builtins a compiled module leaves to the host (its `builtins` export), without running it. */
export async function requiredBuiltins(wasm: Uint8Array): Promise<string[]> {
  const module = await compileModule(wasm);
  const { imports, memory } = listingImports(wasm);
  return builtinNames(await instantiate(module, imports), memory);
}

/** `requiredBuiltins` on the calling thread (compiles synchronously: for tools and the PAP, not the PDP). */
export function requiredBuiltinsSync(wasm: Uint8Array): string[] {
  const { imports, memory } = listingImports(wasm);
  let instance: WasmInstance;
  try {
    instance = new WA.Instance(new WA.Module(wasm), imports);
  } catch (cause) {
    throw new EngineError(
      'invalid_wasm',
      `not an instantiable WebAssembly module: ${(cause as Error).message}`,
      { cause },
    );
  }
  return builtinNames(instance, memory);
}

function listingImports(wasm: Uint8Array): { imports: WasmImports; memory: WasmMemory } {
  const memory = new WA.Memory({ initial: memoryPages(wasm, 2) });
  const refuse = (): never => {
    throw new Error('not callable while listing builtins');
  };
  const env = { memory, opa_abort: refuse, opa_println: refuse };
  const builtins = { opa_builtin0: refuse, opa_builtin1: refuse, opa_builtin2: refuse, opa_builtin3: refuse };
  return { imports: { env: { ...env, ...builtins, opa_builtin4: refuse } }, memory };
}

function builtinNames(instance: WasmInstance, memory: WasmMemory): string[] {
  const ex = checkExports(instance);
  const view = new MemoryView(memory);
  const map = parseValue(view.cString(ex.opa_json_dump(ex.builtins()))) as Record<string, number>;
  return Object.keys(map).sort();
}

function memoryPages(wasm: Uint8Array, wanted: number): number {
  let minimum: number;
  try {
    minimum = requiredMemoryPages(wasm);
  } catch (cause) {
    throw new EngineError('invalid_wasm', `malformed WebAssembly module: ${(cause as Error).message}`, {
      cause,
    });
  }
  return Math.max(minimum, wanted);
}

async function compileModule(wasm: Uint8Array): Promise<WasmModule> {
  try {
    return await WA.compile(wasm);
  } catch (cause) {
    throw new EngineError('invalid_wasm', `not a WebAssembly module: ${(cause as Error).message}`, { cause });
  }
}

async function instantiate(module: WasmModule, imports: WasmImports): Promise<WasmInstance> {
  try {
    return await WA.instantiate(module, imports);
  } catch (cause) {
    throw new EngineError('invalid_wasm', `cannot instantiate policy module: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function checkExports(instance: WasmInstance): OpaExports {
  const ex = instance.exports as unknown as OpaExports;
  const missing = REQUIRED_EXPORTS.filter((name) => typeof ex[name] !== 'function');
  if (missing.length > 0) {
    throw new EngineError('invalid_wasm', 'module is not an OPA policy (ABI 1.2+)', { details: { missing } });
  }
  const major = ex.opa_wasm_abi_version?.value;
  const minor = ex.opa_wasm_abi_minor_version?.value;
  if (major !== 1 || typeof minor !== 'number' || minor < 2) {
    throw new EngineError('invalid_wasm', `unsupported OPA WASM ABI ${String(major)}.${String(minor)}`, {
      details: { major, minor },
    });
  }
  return ex;
}

/** Byte view over linear memory that survives `memory.grow` (which detaches the old ArrayBuffer). */
class MemoryView {
  private buf: Buffer;
  constructor(private readonly memory: WasmMemory) {
    this.buf = Buffer.from(memory.buffer);
  }
  get bytes(): Buffer {
    if (this.buf.buffer !== this.memory.buffer) this.buf = Buffer.from(this.memory.buffer);
    return this.buf;
  }
  cString(addr: number): string {
    const b = this.bytes;
    const end = b.indexOf(0, addr);
    return b.toString('utf8', addr, end < 0 ? b.length : end);
  }
  /** Makes sure `[addr, addr+len)` is inside memory, growing it as needed. */
  reserve(addr: number, len: number): void {
    const short = addr + len - this.memory.buffer.byteLength;
    if (short > 0) this.memory.grow(Math.ceil(short / 65536));
  }
}

/**
 * One instance of a compiled policy. Not reentrant and bound to the thread that created it: WebAssembly
 * instances are single-threaded, and `evaluateJson` runs synchronously to completion, so on one event loop
 * evaluations never interleave. `setData` must not be called while another caller relies on the old data.
 */
export class WasmPolicy {
  /** Entrypoint name (e.g. `envoy/authz/allow`) → id. */
  readonly entrypoints: ReadonlyMap<string, number>;
  /** Builtins this module imports from the host, sorted. */
  readonly requiredBuiltins: readonly string[];

  private readonly ex: OpaExports;
  private readonly view: MemoryView;
  private readonly ctx: EvalContext = { nowNs: undefined };
  private dataAddr = 0;
  private baseHeapPtr = 0;
  private dataHeapPtr = 0;
  /** Undefined once retired. */
  private remains: InstanceRemains | undefined;

  private constructor(
    ex: OpaExports,
    view: MemoryView,
    entrypoints: ReadonlyMap<string, number>,
    required: readonly string[],
    remains: InstanceRemains,
  ) {
    this.ex = ex;
    this.view = view;
    this.entrypoints = entrypoints;
    this.requiredBuiltins = required;
    this.remains = remains;
    this.baseHeapPtr = ex.opa_heap_ptr_get();
    this.setData({});
  }

  static async instantiate(wasm: Uint8Array, options: WasmPolicyOptions): Promise<WasmPolicy> {
    const { reuse } = options;
    const module =
      reuse !== undefined && sameBytes(reuse.wasm, wasm) ? reuse.module : await compileModule(wasm);
    const pages = memoryPages(wasm, options.initialMemoryPages ?? 16);
    let memory: WasmMemory;
    if (reuse === undefined) memory = new WA.Memory({ initial: pages });
    else {
      memory = reuse.memory;
      // The module expects fresh (zeroed) memory: nothing of the previous revision may show through.
      new Uint8Array(memory.buffer).fill(0);
      const short = pages - memory.buffer.byteLength / 65536;
      if (short > 0) memory.grow(short);
    }
    const view = new MemoryView(memory);
    const strict = options.strictBuiltinErrors === true;
    // Filled after instantiation: the import functions close over these, the table is indexed by builtin id.
    let ex: OpaExports | undefined;
    let ctx: EvalContext | undefined;
    const table: (BuiltinDef | undefined)[] = [];
    const names: string[] = [];

    // Results of `pure` builtins by operand text; cleared when full rather than tracked as an LRU.
    const memo = new Map<string, string | null>();

    const call = (id: number, addrs: readonly number[]): number => {
      const def = table[id];
      const e = ex!;
      if (def === undefined)
        throw new EngineError('builtin_unsupported', `builtin ${names[id] ?? id} is not implemented`);
      const texts: string[] = new Array(addrs.length);
      for (let i = 0; i < addrs.length; i++) {
        texts[i] = view.cString(def.sets ? e.opa_value_dump(addrs[i]!) : e.opa_json_dump(addrs[i]!));
      }
      let key: string | undefined;
      let text: string | null | undefined;
      let rego = false;
      if (def.pure) {
        key = `${id}\u0000${texts.join('\u0000')}`;
        text = memo.get(key);
      }
      if (text === undefined) {
        const args = texts.map((t) => parseValue(t, def.sets));
        let result: unknown;
        try {
          result = def.fn(args, ctx!);
        } catch (err) {
          if (!strict) return 0;
          throw new EngineError('builtin_error', `${names[id]}: ${(err as Error).message}`, {
            cause: err,
            details: { builtin: names[id] },
          });
        }
        if (result === undefined) text = null;
        else ({ text, rego } = serializeValue(result, def.setResult === true));
        if (key !== undefined && !rego) {
          if (memo.size >= MEMO_ENTRIES) memo.clear();
          memo.set(key, text);
        }
      }
      if (text === null) return 0;
      const len = Buffer.byteLength(text);
      const addr = e.opa_malloc(len);
      view.bytes.write(text, addr, len, 'utf8');
      const parsed = rego ? e.opa_value_parse(addr, len) : e.opa_json_parse(addr, len);
      if (parsed === 0) throw new EngineError('eval_failed', `${names[id]}: result could not be loaded`);
      return parsed;
    };

    const instance = await instantiate(module, {
      env: {
        memory,
        opa_abort: (addr: number) => {
          throw new EngineError('eval_failed', `policy aborted: ${view.cString(addr)}`);
        },
        opa_println: (addr: number) => options.print?.(view.cString(addr)),
        opa_builtin0: (id: number) => call(id, []),
        opa_builtin1: (id: number, _c: number, a: number) => call(id, [a]),
        opa_builtin2: (id: number, _c: number, a: number, b: number) => call(id, [a, b]),
        opa_builtin3: (id: number, _c: number, a: number, b: number, c: number) => call(id, [a, b, c]),
        opa_builtin4: (id: number, _c: number, a: number, b: number, c: number, d: number) =>
          call(id, [a, b, c, d]),
      },
    });
    ex = checkExports(instance);

    const builtinIds = parseValue(view.cString(ex.opa_json_dump(ex.builtins()))) as Record<string, number>;
    const unsupported: string[] = [];
    for (const [name, id] of Object.entries(builtinIds)) {
      names[id] = name;
      const def = Object.hasOwn(options.builtins, name) ? options.builtins[name] : undefined;
      if (def === undefined) unsupported.push(name);
      else table[id] = def;
    }
    if (unsupported.length > 0) {
      throw new EngineError(
        'builtin_unsupported',
        `policy uses builtins this engine cannot run: ${unsupported.sort().join(', ')}`,
        {
          details: { builtins: unsupported },
        },
      );
    }
    const eps = parseValue(view.cString(ex.opa_json_dump(ex.entrypoints()))) as Record<string, number>;
    const policy = new WasmPolicy(ex, view, new Map(Object.entries(eps)), Object.keys(builtinIds).sort(), {
      memory,
      module,
      wasm,
    });
    ctx = policy.ctx;
    return policy;
  }

  /**
   * Stops this instance for good and hands over its memory and module for the next revision. Any later
   * call throws `bundle_not_loaded`: the memory is about to be overwritten.
   */
  retire(): InstanceRemains | undefined {
    const remains = this.remains;
    this.remains = undefined;
    return remains;
  }

  /** Replaces the policy's `data` document. */
  setData(data: unknown): void {
    let text: string;
    try {
      text = JSON.stringify(data ?? {});
    } catch (cause) {
      throw new EngineError('invalid_bundle', `data is not JSON-serializable: ${(cause as Error).message}`, {
        cause,
      });
    }
    this.setDataJson(text);
  }

  /** Replaces the policy's `data` document with JSON text (or its UTF-8 bytes), parsed by the module itself. */
  setDataJson(json: string | Uint8Array): void {
    this.live();
    const ex = this.ex;
    ex.opa_heap_ptr_set(this.baseHeapPtr);
    const len = typeof json === 'string' ? Buffer.byteLength(json) : json.byteLength;
    const addr = ex.opa_malloc(len);
    if (typeof json === 'string') this.view.bytes.write(json, addr, len, 'utf8');
    else this.view.bytes.set(json, addr);
    const parsed = ex.opa_json_parse(addr, len);
    if (parsed === 0)
      throw new EngineError('invalid_bundle', 'data could not be parsed by the policy module');
    this.dataAddr = parsed;
    this.dataHeapPtr = ex.opa_heap_ptr_get();
  }

  /**
   * Evaluates entrypoint `id` on `inputJson` (JSON text; undefined means no input) and returns OPA's result
   * set as JSON text: `[{"result":…}]`, or `[]` when the entrypoint is undefined. Exact for big numbers.
   */
  evaluateJson(id: number, inputJson: string | undefined): string {
    this.live();
    const ex = this.ex;
    const view = this.view;
    let inputAddr = 0;
    let inputLen = 0;
    if (inputJson !== undefined) {
      // The input goes right above data; opa_eval parses it there and allocates after it.
      inputAddr = this.dataHeapPtr;
      // At most 3 bytes per UTF-16 unit; reserving that avoids measuring the string first.
      view.reserve(inputAddr, inputJson.length * 3);
      inputLen = view.bytes.write(inputJson, inputAddr, 'utf8');
    }
    this.ctx.nowNs = undefined;
    const heap = this.dataHeapPtr + inputLen;
    let resultAddr: number;
    try {
      resultAddr = ex.opa_eval(0, id, this.dataAddr, inputAddr, inputLen, heap, 0);
    } catch (err) {
      if (err instanceof EngineError) throw err;
      // A trap inside the module (e.g. out-of-bounds access); the next call starts from a fresh heap.
      throw new EngineError('eval_failed', `policy evaluation trapped: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return view.cString(resultAddr);
  }

  private live(): void {
    if (this.remains === undefined)
      throw new EngineError(
        'bundle_not_loaded',
        'this instance was replaced by a newer revision and released',
      );
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.byteLength === b.byteLength && Buffer.compare(a, b) === 0);
}
