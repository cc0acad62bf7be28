// Creating a revision: validate paths, short-cut same content, compile and test with opa, build archives, store.
import { buildBundleArchive, readBundleArchive, sha256Hex } from '@portcullis/bundle';
import { PortcullisError, toPortcullisError } from '@portcullis/runtime';
import type { BundleStore } from './bundle-store.ts';
import type { compileBundle } from './compile/index.ts';
import { contentHash } from './content-hash.ts';
import type { PapMetrics } from './pap-metrics.ts';
import type { RevisionCreated } from './schemas.ts';

export type CompileFn = typeof compileBundle;

export interface RevisionSource {
  modules: Record<string, string>;
  data: unknown;
  entrypoints: string[];
  /** Undefined keeps the bundle's setting (strict for a new bundle). */
  strict?: boolean;
}

export interface RevisionCreationDeps {
  store: BundleStore;
  compile: CompileFn;
  opaBin: string;
  compileTimeoutMs: number;
  /** Which of the builtins a module imports the engine cannot provide. */
  unsupported?: (builtins: string[]) => string[];
  metrics?: PapMetrics;
}

/**
 * Module paths become archive paths and file names under the compile temp dir: a path that is
 * absolute or climbs out (`../`) is refused before anything touches the disk.
 */
export function checkModulePaths(modules: Record<string, string>): void {
  const details: { field: string; file: string; message: string }[] = [];
  for (const path of Object.keys(modules)) {
    let reason: string | undefined;
    if (path.length === 0 || path.length > 512) reason = 'path must have 1 to 512 characters';
    else if (path.startsWith('/') || /^[A-Za-z]:/.test(path))
      reason = 'path must be relative to the bundle root';
    else if (path.includes('\\') || path.includes('\0')) reason = 'path must use / and no NUL';
    else if (path.split('/').some((seg) => seg === '..' || seg === '.' || seg === '')) {
      reason = 'path escapes the bundle or has empty, `.` or `..` segments';
    } else if (!path.endsWith('.rego')) reason = 'module paths must end in .rego';
    if (reason) details.push({ field: `body.modules[${JSON.stringify(path)}]`, file: path, message: reason });
  }
  if (Object.keys(modules).length === 0) {
    details.push({ field: 'body.modules', file: '', message: 'a bundle needs at least one Rego module' });
  }
  if (details.length > 0) {
    throw new PortcullisError(
      'invalid_bundle',
      details.map((d) => `${d.file || d.field}: ${d.message}`).join('; '),
      {
        details,
      },
    );
  }
}

/**
 * Creates a revision of `bundle` from its whole content. The same content (modules, data,
 * entrypoints, strict) as an existing revision returns that revision with `created: false`,
 * before anything is compiled. Bad content throws (compile, test, builtin, entrypoint errors)
 * and stores nothing.
 */
export async function createRevision(
  deps: RevisionCreationDeps,
  bundle: string,
  source: RevisionSource,
  author: string,
  requestId?: string,
): Promise<{ created: boolean; revision: RevisionCreated }> {
  try {
    const out = await create(deps, bundle, source, author, requestId);
    deps.metrics?.revisions.inc({ outcome: out.created ? 'created' : 'existing' });
    return out;
  } catch (err) {
    deps.metrics?.revisions.inc({ outcome: toPortcullisError(err).code });
    throw err;
  }
}

async function create(
  deps: RevisionCreationDeps,
  bundle: string,
  source: RevisionSource,
  author: string,
  requestId: string | undefined,
): Promise<{ created: boolean; revision: RevisionCreated }> {
  checkModulePaths(source.modules);
  const data = source.data ?? {};
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new PortcullisError('validation_failed', 'data must be a JSON object (the bundle’s data.json)', {
      details: [{ field: 'body.data', message: 'must be an object' }],
    });
  }
  const strict = source.strict ?? (await deps.store.strictFlag(bundle));
  const hash = contentHash({ modules: source.modules, data, entrypoints: source.entrypoints, strict });
  const existing = await deps.store.findByContentHash(bundle, hash);
  if (existing) return { created: false, revision: existing };

  const stopTimer = deps.metrics?.compileDuration.startTimer();
  const compiled = await deps
    .compile(
      { modules: source.modules, data, entrypoints: source.entrypoints },
      {
        opaBin: deps.opaBin,
        strict,
        timeoutMs: deps.compileTimeoutMs,
        ...(deps.unsupported ? { unsupported: deps.unsupported } : {}),
      },
    )
    .then(
      (c) => {
        stopTimer?.({ outcome: 'ok' });
        return c;
      },
      (err: unknown) => {
        stopTimer?.({ outcome: toPortcullisError(err).code });
        throw err;
      },
    );
  const { modules, entrypoints } = compiled;
  return deps.store.insertRevision(
    {
      bundle,
      contentHash: hash,
      modules,
      data: compiled.data,
      entrypoints,
      strict,
      wasm: compiled.wasm,
      builtins: compiled.builtins,
      tests: compiled.tests,
      opaVersion: compiled.opaVersion,
      author,
      ...(requestId === undefined ? {} : { requestId }),
    },
    (revision) => {
      const common = { modules, data: compiled.data, entrypoints, revision: String(revision) };
      const bundleTar = buildBundleArchive({ ...common, wasm: compiled.wasm });
      const regoTar = buildBundleArchive(common);
      return {
        bundleTar,
        digest: sha256Hex(bundleTar),
        regoTar,
        regoDigest: sha256Hex(regoTar),
        // Read back from the archive, so the stored manifest is exactly the one served.
        manifest: readBundleArchive(bundleTar, { maxBytes: 2 ** 30, maxFiles: 100_000 }).manifest,
      };
    },
  );
}
