// The `/.manifest` of an OPA bundle: its fields, and strict parsing of one read from an archive.
import { PortcullisError } from '@portcullis/runtime';
import { isJsonObject } from './canonical-json.ts';

/** Maps a WASM module in the bundle to an entrypoint it answers (`envoy/authz/allow`). */
export interface WasmResolver {
  entrypoint: string;
  /** Path of the module inside the bundle, with OPA's leading slash: `/policy.wasm`. */
  module: string;
  annotations?: unknown[];
}

/** The fields OPA's bundle reader understands (v1/bundle/bundle.go `Manifest`). */
export interface BundleManifest {
  revision: string;
  /** Absent means `[""]`: the bundle owns all of `data`. */
  roots?: string[];
  wasm?: WasmResolver[];
  /** 1 for Rego v1 (OPA 1.x's default), 0 for v0. */
  rego_version?: number;
  file_rego_versions?: Record<string, number>;
  metadata?: Record<string, unknown>;
}

export const MANIFEST_PATH = '.manifest';

/** Parses and type-checks a manifest; throws `invalid_bundle` naming the offending field. */
export function parseManifest(bytes: Uint8Array): BundleManifest {
  const fail = (message: string): never => {
    throw new PortcullisError('invalid_bundle', `.manifest: ${message}`, {
      details: [{ file: '.manifest', message }],
    });
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    fail(`not valid JSON (${(err as Error).message})`);
  }
  if (!isJsonObject(parsed)) return fail('must be a JSON object');
  const m = parsed;
  const manifest: BundleManifest = { revision: '' };
  if (m['revision'] !== undefined) {
    if (typeof m['revision'] !== 'string') fail('"revision" must be a string');
    manifest.revision = m['revision'] as string;
  }
  if (m['roots'] !== undefined) {
    const roots = m['roots'];
    if (!Array.isArray(roots) || !roots.every((r): r is string => typeof r === 'string')) {
      fail('"roots" must be an array of strings');
    }
    // OPA standardises roots by trimming slashes before it compares them.
    manifest.roots = (roots as string[]).map((r) => r.replace(/^\/+|\/+$/g, ''));
  }
  if (m['wasm'] !== undefined) {
    const wasm = m['wasm'];
    if (!Array.isArray(wasm)) return fail('"wasm" must be an array');
    manifest.wasm = wasm.map((w: unknown, i) => {
      if (!isJsonObject(w) || typeof w['entrypoint'] !== 'string' || typeof w['module'] !== 'string') {
        return fail(`"wasm"[${i}] must be an object with string "entrypoint" and "module"`);
      }
      const resolver: WasmResolver = { entrypoint: w['entrypoint'], module: w['module'] };
      if (Array.isArray(w['annotations'])) resolver.annotations = w['annotations'];
      return resolver;
    });
  }
  if (m['rego_version'] !== undefined) {
    if (m['rego_version'] !== 0 && m['rego_version'] !== 1) fail('"rego_version" must be 0 or 1');
    manifest.rego_version = m['rego_version'] as number;
  }
  if (m['file_rego_versions'] !== undefined) {
    const versions = m['file_rego_versions'];
    if (!isJsonObject(versions) || !Object.values(versions).every((v) => v === 0 || v === 1)) {
      fail('"file_rego_versions" must map file globs to 0 or 1');
    }
    manifest.file_rego_versions = versions as Record<string, number>;
  }
  if (m['metadata'] !== undefined) {
    if (!isJsonObject(m['metadata'])) fail('"metadata" must be an object');
    manifest.metadata = m['metadata'] as Record<string, unknown>;
  }
  return manifest;
}
