// Which builtins a compiled OPA WASM module expects its host to implement, read from the module itself.
import { PortcullisError } from '@portcullis/runtime';

// The repo compiles against lib ES2023 without DOM, which has no WebAssembly types; this is the
// slice of the JS API used here.
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: Record<string, Record<string, unknown>>): Promise<{ exports: object }>;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface OpaPolicyExports {
  builtins: () => number;
  opa_json_dump: (addr: number) => number;
}

/**
 * The names of the builtins `wasm` imports from the host (the keys of its `builtins()` export:
 * what OPA could not compile into the module, e.g. `http.send`, and what the opa-wasm SDK or the
 * engine must supply), sorted. Instantiates the module with inert host functions; nothing in it
 * is evaluated beyond `builtins()`.
 */
export async function readWasmBuiltins(wasm: Uint8Array): Promise<string[]> {
  let instance: { exports: object };
  const memory = new wasmApi.Memory({ initial: memoryImportMinimum(wasm) ?? 2 });
  const refuse = () => {
    throw new Error('host calls are not available while reading builtins');
  };
  try {
    const module = await wasmApi.compile(wasm);
    instance = await wasmApi.instantiate(module, {
      env: {
        memory,
        opa_abort: refuse,
        opa_println: () => {},
        opa_builtin0: refuse,
        opa_builtin1: refuse,
        opa_builtin2: refuse,
        opa_builtin3: refuse,
        opa_builtin4: refuse,
      },
    });
  } catch (err) {
    throw new PortcullisError(
      'internal',
      `the compiled policy.wasm cannot be instantiated: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const exports = instance.exports as unknown as OpaPolicyExports;
  if (typeof exports.builtins !== 'function' || typeof exports.opa_json_dump !== 'function') {
    throw new PortcullisError(
      'internal',
      'the compiled policy.wasm lacks the builtins/opa_json_dump exports of OPA’s ABI',
    );
  }
  const address = exports.opa_json_dump(exports.builtins());
  const bytes = new Uint8Array(memory.buffer);
  const end = bytes.indexOf(0, address);
  const parsed: unknown = JSON.parse(
    Buffer.from(bytes.subarray(address, end === -1 ? undefined : end)).toString('utf8'),
  );
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PortcullisError('internal', 'the builtins() export of policy.wasm did not return an object');
  }
  return Object.keys(parsed).sort();
}

/**
 * The declared minimum page count of the module's imported memory, from its import section, so
 * the memory handed in is large enough whatever data segments the policy carries.
 */
export function memoryImportMinimum(wasm: Uint8Array): number | undefined {
  let pos = 8; // magic + version
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      const byte = wasm[pos++];
      if (byte === undefined) throw new RangeError('truncated wasm module');
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7;
    }
  };
  const skipName = () => {
    const length = u32();
    pos += length;
  };
  try {
    while (pos < wasm.length) {
      const id = wasm[pos++];
      const size = u32();
      const end = pos + size;
      if (id !== 2) {
        pos = end;
        continue;
      }
      const count = u32();
      for (let i = 0; i < count; i++) {
        skipName();
        skipName();
        const kind = wasm[pos++];
        if (kind === 0)
          u32(); // function: type index
        else if (kind === 1) {
          pos++; // table: element type
          const flags = u32();
          u32();
          if (flags & 1) u32();
        } else if (kind === 2) {
          u32(); // limits flags
          return u32();
        } else if (kind === 3)
          pos += 2; // global: value type + mutability
        else return undefined;
      }
      return undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
