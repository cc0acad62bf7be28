// The slice of the WebAssembly JS API the engine uses, typed here because the repo's lib (ES2023 + node
// types, no DOM) declares no WebAssembly globals.

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

export interface WasmGlobal {
  value: unknown;
}

/** Opaque compiled module. */
export interface WasmModule {
  readonly __wasmModule: unique symbol;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

export type WasmImports = Record<string, Record<string, unknown>>;

interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: WasmImports): Promise<WasmInstance>;
}

export const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

function readLeb(bytes: Uint8Array, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[pos.i++];
    if (b === undefined) throw new RangeError('truncated module');
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return result;
    shift += 7;
  }
}

function readSleb(bytes: Uint8Array, pos: { i: number }): number {
  let result = 0;
  let shift = 0;
  let b: number;
  do {
    b = bytes[pos.i++]!;
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return b & 0x40 ? result - 2 ** shift : result;
}

/**
 * The pages of memory a module needs at instantiation: the minimum its memory import declares, and enough
 * to hold its active data segments (OPA's compiler can declare less than its data occupies). The JS API
 * exposes neither, so both are read from the binary.
 */
export function requiredMemoryPages(bytes: Uint8Array): number {
  const pos = { i: 8 };
  let minimum = 0;
  let dataEnd = 0;
  while (pos.i < bytes.length) {
    const id = bytes[pos.i++];
    const size = readLeb(bytes, pos);
    const end = pos.i + size;
    if (id === 2) {
      const count = readLeb(bytes, pos);
      for (let n = 0; n < count; n++) {
        // (read the length before adding: `pos.i += readLeb(…)` would add to the stale position)
        for (let name = 0; name < 2; name++) {
          const len = readLeb(bytes, pos);
          pos.i += len;
        }
        const kind = bytes[pos.i++];
        if (kind === 0) readLeb(bytes, pos);
        else if (kind === 1) {
          pos.i++;
          const flags = readLeb(bytes, pos);
          readLeb(bytes, pos);
          if (flags & 1) readLeb(bytes, pos);
        } else if (kind === 2) {
          const flags = readLeb(bytes, pos);
          minimum = readLeb(bytes, pos);
          if (flags & 1) readLeb(bytes, pos);
        } else if (kind === 3) pos.i += 2;
        else throw new RangeError(`unknown import kind ${String(kind)}`);
      }
    } else if (id === 11) {
      const count = readLeb(bytes, pos);
      for (let n = 0; n < count; n++) {
        const flags = readLeb(bytes, pos);
        if (flags === 1) {
          const len = readLeb(bytes, pos); // passive segment: not placed at instantiation
          pos.i += len;
          continue;
        }
        if (flags === 2) readLeb(bytes, pos); // memory index
        let offset = 0;
        if (bytes[pos.i] === 0x41) {
          pos.i++;
          offset = readSleb(bytes, pos);
        } else throw new RangeError('unsupported data segment offset expression');
        if (bytes[pos.i++] !== 0x0b) throw new RangeError('malformed data segment offset');
        const len = readLeb(bytes, pos);
        pos.i += len;
        dataEnd = Math.max(dataEnd, offset + len);
      }
    }
    pos.i = end;
  }
  return Math.max(minimum, Math.ceil(dataEnd / 65536));
}
