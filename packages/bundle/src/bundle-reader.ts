// Reading an OPA bundle .tar.gz in memory, with OPA's layout rules and limits against hostile archives.
import { PortcullisError } from '@portcullis/runtime';
import { type BundleManifest, MANIFEST_PATH, parseManifest } from './bundle-manifest.ts';
import { dataPathOf } from './bundle-path.ts';
import { checkRoots } from './bundle-roots.ts';
import { isJsonObject } from './canonical-json.ts';
import { normalizeEntrypoint } from './entrypoint.ts';
import { scanJsonObject } from './json-text.ts';
import { regoPackagePath } from './rego-package.ts';
import { gunzipBounded, readTar, type TarLimits } from './tar-reader.ts';

export type ReadBundleOptions = TarLimits;

export interface ReadBundleAsJsonOptions extends TarLimits {
  /** Data as UTF-8 JSON text rather than an object (see readBundleArchive). */
  dataAs: 'json';
}

export interface ReadBundle {
  /** Rego sources by root-relative path (`envoy/authz/policy.rego`). */
  modules: Record<string, string>;
  /** Every `data.json` merged at its directory's path, as OPA does. */
  data: Record<string, unknown>;
  /** The WASM module the manifest's `wasm` entries point at (or `/policy.wasm` when none do). */
  wasm?: Buffer;
  /** The manifest; `{ revision: '' }` when the archive has none. */
  manifest: BundleManifest;
  /** Entrypoints of the manifest's `wasm` entries, normalised, in manifest order. */
  entrypoints?: string[];
  /** Entries OPA does not load (unknown files, `.signatures.json`, `plan.json`), by path. */
  ignored: string[];
}

/** A bundle read with `dataAs: 'json'`: the same, with the data as text. */
export interface ReadBundleJson extends Omit<ReadBundle, 'data'> {
  /** The merged data as UTF-8 JSON text of an object; checked, not parsed. */
  dataJson: Uint8Array;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string, file: string): PortcullisError {
  return new PortcullisError('invalid_bundle', `${file}: ${message}`, { details: [{ file, message }] });
}

/**
 * Reads an OPA bundle (.tar.gz) entirely in memory; nothing is written to disk.
 * Limits: `maxBytes` bounds the summed file content and, with `maxFiles`, the decompressed stream
 * (checked while inflating); `maxEntryBytes` (default `maxBytes`) bounds one file.
 * Throws `invalid_bundle` (bad gzip/tar, unsafe or duplicate paths, links or devices, non-UTF-8
 * Rego, invalid or conflicting data.json, a bad manifest, content outside the manifest's roots,
 * YAML data or delta bundles, which are not supported) or `payload_too_large`; each names the entry.
 */
export function readBundleArchive(bytes: Uint8Array, options: ReadBundleAsJsonOptions): ReadBundleJson;
export function readBundleArchive(bytes: Uint8Array, options: ReadBundleOptions): ReadBundle;
/**
 * With `dataAs: 'json'` the data comes back as JSON text. A bundle whose only data file is the root
 * `data.json` (what `opa build` and the PAP write) then costs no parse at all: the file is checked
 * as JSON in place (scanJsonObject) and returned as a view of the decompressed archive, as is the
 * WASM module, so the whole bundle stays one allocation. Other layouts are merged and serialized.
 */
export function readBundleArchive(
  bytes: Uint8Array,
  options: ReadBundleOptions | ReadBundleAsJsonOptions,
): ReadBundle | ReadBundleJson {
  const asJson = 'dataAs' in options && options.dataAs === 'json';
  const entries = readTar(gunzipBounded(bytes, options), options);
  const modules: Record<string, string> = {};
  const data: Record<string, unknown> = {};
  const wasmModules = new Map<string, Buffer>();
  const ignored: string[] = [];
  let manifest: BundleManifest | undefined;
  const dataFiles = entries.filter((e) => e.path.slice(e.path.lastIndexOf('/') + 1) === 'data.json');
  // The root data.json kept as text: the only data file, read for serving.
  let rootText: Buffer | undefined;
  let rootKeys: string[] | undefined;

  for (const { path, bytes: content } of entries) {
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (path.endsWith('.rego')) {
      try {
        modules[path] = decoder.decode(content);
      } catch {
        throw invalid('Rego source is not valid UTF-8', path);
      }
    } else if (base === 'data.json' && asJson && dataFiles.length === 1 && path === 'data.json') {
      // JSON.parse (through TextDecoder) accepted a leading byte order mark; so does this.
      const text = hasBom(content) ? content.subarray(3) : content;
      try {
        rootKeys = scanJsonObject(text);
      } catch (err) {
        const message = (err as Error).message;
        if (message.startsWith('expected a JSON object'))
          throw invalid('the root data.json must hold a JSON object', path);
        throw invalid(`not valid JSON (${message})`, path);
      }
      rootText = text;
    } else if (base === 'data.json') {
      let value: unknown;
      try {
        value = JSON.parse(decoder.decode(content));
      } catch (err) {
        throw invalid(`not valid JSON (${(err as Error).message})`, path);
      }
      insertData(data, dataPathOf(path), value, path);
    } else if (base === 'data.yaml' || base === 'data.yml') {
      throw invalid('YAML data files are not supported; use data.json', path);
    } else if (base === 'patch.json') {
      throw invalid('delta bundles (patch.json) are not supported', path);
    } else if (base === 'policy.wasm') {
      // A copy, so holding the module does not keep the whole decompressed archive alive; read for
      // serving, the data's text is a view of the archive anyway.
      wasmModules.set(path, asJson ? content : Buffer.from(content));
    } else if (path === MANIFEST_PATH) {
      manifest = parseManifest(content);
    } else if (path.endsWith('.manifest')) {
      // OPA treats any path ending in ".manifest" as the manifest; only the root one is unambiguous.
      throw invalid('a manifest must be the file /.manifest at the bundle root', path);
    } else {
      ignored.push(path);
    }
  }

  manifest ??= { revision: '' };
  const result: ReadBundle = { modules, data, manifest, ignored };
  const roots = manifest.roots ?? [''];
  let entrypoints: string[] | undefined;
  if (manifest.wasm !== undefined && manifest.wasm.length > 0) {
    entrypoints = [];
    const referenced = new Set<string>();
    for (const resolver of manifest.wasm) {
      const module = resolver.module.replace(/^\/+/, '');
      if (!wasmModules.has(module)) {
        throw invalid(
          `"wasm" refers to module ${JSON.stringify(resolver.module)}, which is not in the bundle`,
          MANIFEST_PATH,
        );
      }
      referenced.add(module);
      let entrypoint: string;
      try {
        entrypoint = normalizeEntrypoint(resolver.entrypoint);
      } catch (err) {
        throw invalid(`"wasm" entrypoint: ${(err as Error).message}`, MANIFEST_PATH);
      }
      if (entrypoints.includes(entrypoint)) {
        throw invalid(
          `entrypoint ${JSON.stringify(entrypoint)} is listed more than once in "wasm"`,
          MANIFEST_PATH,
        );
      }
      entrypoints.push(entrypoint);
    }
    if (referenced.size > 1) {
      throw invalid('bundles with more than one WASM module are not supported', MANIFEST_PATH);
    }
    result.wasm = wasmModules.get([...referenced][0]!)!;
    result.entrypoints = entrypoints;
  } else if (wasmModules.has('policy.wasm')) {
    result.wasm = wasmModules.get('policy.wasm')!;
  }

  const packages = new Map(Object.entries(modules).map(([file, source]) => [file, regoPackagePath(source)]));
  const checked = rootText === undefined ? data : dataForRoots(rootText, rootKeys!, roots);
  checkRoots(roots, { packages, data: checked, entrypoints: entrypoints ?? [] });
  if (!asJson) return result;
  const { data: _, ...rest } = result;
  return { ...rest, dataJson: rootText ?? Buffer.from(JSON.stringify(data)) };
}

function hasBom(bytes: Uint8Array): boolean {
  return bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

/**
 * What checkRoots needs of data kept as text: its top-level keys suffice unless a root lies inside
 * one of them (`a/b` under key `a`), when the values along the way matter and the text is parsed.
 */
function dataForRoots(text: Buffer, keys: string[], roots: readonly string[]): Record<string, unknown> {
  if (keys.some((key) => roots.some((root) => root.startsWith(`${key}/`)))) {
    return JSON.parse(decoder.decode(text)) as Record<string, unknown>;
  }
  const data: Record<string, unknown> = {};
  // A key under a root is not looked into; one outside every root is refused, whatever it holds.
  for (const key of keys) define(data, key, null);
  return data;
}

function own(node: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(node, key) ? node[key] : undefined;
}

// defineProperty, not assignment: a key such as "__proto__" must stay a plain data key.
function define(node: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Merges `value` into `data` at `path` the way OPA's bundle reader does: objects merge, anything else conflicts. */
function insertData(data: Record<string, unknown>, path: string[], value: unknown, file: string): void {
  if (path.length === 0) {
    if (!isJsonObject(value)) throw invalid('the root data.json must hold a JSON object', file);
    mergeInto(data, value, [], file);
    return;
  }
  let node = data;
  for (const [i, key] of path.entries()) {
    const existing = own(node, key);
    if (i === path.length - 1) {
      if (existing === undefined) define(node, key, value);
      else if (isJsonObject(existing) && isJsonObject(value)) mergeInto(existing, value, path, file);
      else throw conflict(path, file);
      return;
    }
    if (existing === undefined) {
      const child: Record<string, unknown> = {};
      define(node, key, child);
      node = child;
    } else if (isJsonObject(existing)) {
      node = existing;
    } else {
      throw conflict(path.slice(0, i + 1), file);
    }
  }
}

function mergeInto(
  target: Record<string, unknown>,
  source: Record<string, unknown>,
  at: string[],
  file: string,
): void {
  for (const key of Object.keys(source)) {
    const existing = own(target, key);
    const incoming = source[key];
    if (existing === undefined) define(target, key, incoming);
    else if (isJsonObject(existing) && isJsonObject(incoming))
      mergeInto(existing, incoming, [...at, key], file);
    else throw conflict([...at, key], file);
  }
}

function conflict(path: string[], file: string): PortcullisError {
  return invalid(`data at /${path.join('/')} conflicts with data from another data.json`, file);
}
