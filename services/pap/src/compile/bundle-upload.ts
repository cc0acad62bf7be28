// An uploaded OPA bundle (.tar.gz) turned into a bundle source for compileBundle.
import {
  type BundleManifest,
  entrypointRef,
  normalizeEntrypoints,
  readBundleArchive,
  regoPackagePath,
} from '@portcullis/bundle';
import { PortcullisError } from '@portcullis/runtime';
import type { BundleSource } from './bundle-source.ts';

/** Media types an uploaded bundle may be sent with (parameters such as `; charset` are ignored). */
export const BUNDLE_MEDIA_TYPES = [
  'application/gzip',
  'application/x-gzip',
  'application/octet-stream',
] as const;

export interface BundleUploadOptions {
  /** Entrypoints given with the request (e.g. `?entrypoint=`); they take precedence over the archive's. */
  entrypoints?: string[];
  maxBytes?: number;
  maxFiles?: number;
}

export interface BundleUpload extends BundleSource {
  data: Record<string, unknown>;
  manifest: BundleManifest;
  /** Archive entries not used: files OPA does not load, and a policy.wasm (the PAP compiles its own). */
  ignored: string[];
}

const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_FILES = 1000;

/**
 * Reads an uploaded OPA bundle into a source. Entrypoints, first that applies:
 * 1. `options.entrypoints` (from the request), 2. the manifest's `wasm[].entrypoint` (what
 * `opa build -t wasm -e …` writes, and what the PAP's own bundles carry) except `test_*` rules,
 * 3. the manifest's
 * `metadata.entrypoints` (an array of strings; the PAP writes it into bundles without WASM).
 * None of them → `validation_failed`. Rego v0 bundles (`rego_version: 0`) are refused: the PAP
 * compiles Rego v1 only. Other errors: `unsupported_media_type`, and those of readBundleArchive.
 */
export async function readBundleUpload(
  body: Buffer,
  contentType: string,
  options: BundleUploadOptions = {},
): Promise<BundleUpload> {
  const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
  if (!(BUNDLE_MEDIA_TYPES as readonly string[]).includes(mediaType)) {
    throw new PortcullisError(
      'unsupported_media_type',
      `a bundle archive must be sent as ${BUNDLE_MEDIA_TYPES.join(', ')}, not ${JSON.stringify(contentType)}`,
      { details: [{ field: 'content-type', reason: `expected one of ${BUNDLE_MEDIA_TYPES.join(', ')}` }] },
    );
  }
  const read = readBundleArchive(body, {
    maxBytes: options.maxBytes ?? DEFAULT_MAX_BYTES,
    maxFiles: options.maxFiles ?? DEFAULT_MAX_FILES,
  });
  const { manifest } = read;
  if (manifest.rego_version === 0 || Object.values(manifest.file_rego_versions ?? {}).includes(0)) {
    throw new PortcullisError('invalid_bundle', '.manifest: Rego v0 bundles are not supported; use Rego v1', {
      details: [{ file: '.manifest', message: 'rego_version 0 is not supported' }],
    });
  }
  const rewritten =
    read.entrypoints === undefined ? undefined : rewrittenByOpaBuild(read.modules, read.entrypoints);
  if (rewritten !== undefined) {
    const message =
      'this bundle was built with `opa build -t wasm`, which moves the entrypoint rules out of the Rego into ' +
      'policy.wasm; upload the source instead (a .tar.gz of the policy directory, or `opa build` without -t wasm)';
    throw new PortcullisError('invalid_bundle', `${rewritten}: ${message}`, {
      details: [{ file: rewritten, message }],
    });
  }
  const entrypoints = pickEntrypoints(
    options.entrypoints,
    read.entrypoints,
    manifest.metadata?.['entrypoints'],
  );
  const ignored = read.wasm === undefined ? read.ignored : [...read.ignored, 'policy.wasm'];
  return { modules: read.modules, data: read.data, entrypoints, manifest, ignored };
}

/**
 * The module `opa build -t wasm` rewrote, if any: it replaces each entrypoint rule with an import
 * of that rule into its own package (`package envoy.authz` + `import data.envoy.authz.allow`),
 * which no hand-written module does. Such Rego cannot be compiled again.
 */
function rewrittenByOpaBuild(modules: Record<string, string>, entrypoints: string[]): string | undefined {
  for (const [file, source] of Object.entries(modules)) {
    const pkg = regoPackagePath(source);
    for (const entrypoint of entrypoints) {
      if (entrypoint.slice(0, entrypoint.lastIndexOf('/')) !== pkg) continue;
      const ref = entrypointRef(entrypoint).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      if (new RegExp(`^[ \\t]*import[ \\t]+${ref}[ \\t]*(#.*)?$`, 'm').test(source)) return file;
    }
  }
  return undefined;
}

function pickEntrypoints(
  fromRequest: string[] | undefined,
  fromWasm: string[] | undefined,
  fromMetadata: unknown,
): string[] {
  if (fromRequest !== undefined && fromRequest.length > 0) return normalizeEntrypoints(fromRequest);
  // `opa build -t wasm` adds every `test_*` rule as an entrypoint next to the ones asked for; they
  // are tests, not decisions, and the PAP compiles without the test modules.
  const decisions = fromWasm?.filter((e) => !e.slice(e.lastIndexOf('/') + 1).startsWith('test_')) ?? [];
  if (decisions.length > 0) return decisions;
  if (fromMetadata !== undefined) {
    if (!Array.isArray(fromMetadata) || !fromMetadata.every((e): e is string => typeof e === 'string')) {
      throw new PortcullisError(
        'invalid_bundle',
        '.manifest: metadata.entrypoints must be an array of strings',
        {
          details: [{ file: '.manifest', message: 'metadata.entrypoints must be an array of strings' }],
        },
      );
    }
    if (fromMetadata.length > 0) return normalizeEntrypoints(fromMetadata);
  }
  throw new PortcullisError(
    'validation_failed',
    'the bundle names no entrypoints: pass them with the request, or in the manifest (wasm[].entrypoint or metadata.entrypoints)',
    { details: [{ field: 'entrypoints', reason: 'no entrypoints in the request or the bundle manifest' }] },
  );
}
