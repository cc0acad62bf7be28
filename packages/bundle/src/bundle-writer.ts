// Writing an OPA bundle .tar.gz: manifest, data, Rego sources and policy.wasm, byte-for-byte reproducible.
import { PortcullisError } from '@portcullis/runtime';
import type { BundleManifest } from './bundle-manifest.ts';
import { normalizeBundlePath } from './bundle-path.ts';
import { checkRoots, collapseRoots } from './bundle-roots.ts';
import { canonicalJson, isJsonObject } from './canonical-json.ts';
import { normalizeEntrypoints } from './entrypoint.ts';
import { regoPackagePath } from './rego-package.ts';
import { gzipDeterministic, type TarFile, writeTar } from './tar-writer.ts';

export interface BundleContent {
  /** Rego sources by bundle-relative path; each path must end in `.rego`. */
  modules: Record<string, string>;
  /** The data document; must be a JSON object. Written as one `/data.json`. */
  data: unknown;
  /** The compiled policy, written as `/policy.wasm` and referenced by one manifest `wasm` entry per entrypoint. */
  wasm?: Uint8Array;
  /** In any spelling normalizeEntrypoint accepts; written normalised, deduplicated, in the given order. */
  entrypoints: string[];
  revision: string;
  /** Default: derived (see deriveRoots). */
  roots?: string[];
  /** Manifest metadata. Without `wasm`, `metadata.entrypoints` is set to the entrypoints so they survive a round trip. */
  metadata?: Record<string, unknown>;
}

export const WASM_MODULE_PATH = '/policy.wasm';

/**
 * The roots a bundle with this content owns: the package of every module, every top-level data key
 * and every entrypoint, with nested ones absorbed by their ancestors (`envoy` absorbs
 * `envoy/authz`). `[""]` (everything) when a module's package cannot be read or there is nothing.
 */
export function deriveRoots(
  modules: Record<string, string>,
  data: Record<string, unknown>,
  entrypoints: string[],
): string[] {
  // Data keys go in as they are: OPA checks data against roots by joining keys with "/".
  const candidates: string[] = [...Object.keys(data), ...entrypoints];
  for (const source of Object.values(modules)) {
    const pkg = regoPackagePath(source);
    if (pkg === undefined) return [''];
    candidates.push(pkg);
  }
  return candidates.length === 0 ? [''] : collapseRoots(candidates);
}

/**
 * Builds an OPA bundle that a stock `opa run --server` (or `opa eval -b`) loads: `/.manifest`
 * (`revision`, `roots`, `wasm`, `rego_version: 1`, `metadata`), `/data.json`, the modules at
 * `/<path>`, `/policy.wasm`. Deterministic: the same content gives byte-identical output (sorted
 * entries, fixed tar metadata, canonical JSON, fixed gzip header; see tar-writer.ts).
 * Throws `invalid_bundle` for bad module paths or roots that do not cover the content, and
 * `validation_failed` for data that is not a JSON object or entrypoints that are not valid.
 */
export function buildBundleArchive(content: BundleContent): Buffer {
  const { data, revision } = content;
  if (!isJsonObject(data)) {
    throw new PortcullisError('validation_failed', 'data must be a JSON object', {
      details: [{ field: 'data', reason: 'must be a JSON object' }],
    });
  }
  if (typeof revision !== 'string') {
    throw new PortcullisError('validation_failed', 'revision must be a string', {
      details: [{ field: 'revision', reason: 'must be a string' }],
    });
  }
  const entrypoints = normalizeEntrypoints(content.entrypoints);
  const files: TarFile[] = [];
  const modules: Record<string, string> = {};
  for (const [rawPath, source] of Object.entries(content.modules)) {
    const path = normalizeBundlePath(rawPath, { what: 'module' });
    if (!path.endsWith('.rego')) {
      throw new PortcullisError(
        'invalid_bundle',
        `module ${JSON.stringify(rawPath)}: the path must end in .rego`,
        {
          details: [{ file: rawPath, message: 'the path must end in .rego' }],
        },
      );
    }
    if (Object.hasOwn(modules, path)) {
      throw new PortcullisError(
        'invalid_bundle',
        `module ${JSON.stringify(rawPath)}: given twice (as ${path})`,
        {
          details: [{ file: rawPath, message: 'duplicate path' }],
        },
      );
    }
    modules[path] = source;
    files.push({ path: `/${path}`, bytes: Buffer.from(source, 'utf8') });
  }

  const roots = content.roots ?? deriveRoots(modules, data, entrypoints);
  const packages = new Map(Object.entries(modules).map(([file, source]) => [file, regoPackagePath(source)]));
  checkRoots(roots, { packages, data, entrypoints }, 'roots');

  const manifest: BundleManifest = { revision, roots };
  if (content.wasm !== undefined) {
    manifest.wasm = entrypoints.map((entrypoint) => ({ entrypoint, module: WASM_MODULE_PATH }));
    files.push({ path: WASM_MODULE_PATH, bytes: content.wasm });
  }
  manifest.rego_version = 1;
  const metadata =
    content.wasm === undefined && entrypoints.length > 0
      ? { ...content.metadata, entrypoints }
      : content.metadata;
  // Key order is fixed here; everything below it is canonical JSON.
  const manifestJson =
    `{"revision":${JSON.stringify(manifest.revision)},"roots":${canonicalJson(roots, 'roots')}` +
    (manifest.wasm ? `,"wasm":${canonicalJson(manifest.wasm, 'wasm')}` : '') +
    `,"rego_version":1` +
    (metadata !== undefined ? `,"metadata":${canonicalJson(metadata, 'metadata')}` : '') +
    '}';
  files.push({ path: '/.manifest', bytes: Buffer.from(manifestJson, 'utf8') });
  files.push({ path: '/data.json', bytes: Buffer.from(canonicalJson(data, 'data'), 'utf8') });
  return gzipDeterministic(writeTar(files));
}
