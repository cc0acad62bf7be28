// Bundle roots: the parts of `data` a bundle owns, with OPA's rules for deriving and checking them.
import { PortcullisError } from '@portcullis/runtime';
import { isJsonObject } from './canonical-json.ts';

/** True when root `root` contains `path` (both slash paths; the root `""` contains everything). */
export function rootContains(root: string, path: string): boolean {
  if (root === '') return true;
  const r = root.split('/');
  const p = path.split('/');
  return r.length <= p.length && r.every((segment, i) => segment === p[i]);
}

export function rootsContain(roots: readonly string[], path: string): boolean {
  return roots.some((root) => rootContains(root, path));
}

export function rootsOverlap(a: string, b: string): boolean {
  return rootContains(a, b) || rootContains(b, a);
}

/**
 * Reduces candidate paths to the smallest set of non-overlapping roots that contains them all
 * (`envoy` absorbs `envoy/authz`). OPA refuses a manifest whose roots overlap.
 */
export function collapseRoots(candidates: Iterable<string>): string[] {
  const sorted = [...new Set(candidates)].sort(
    (a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1),
  );
  const kept: string[] = [];
  for (const candidate of sorted) {
    if (!rootsContain(kept, candidate)) kept.push(candidate);
  }
  return kept.sort();
}

export interface RootedContent {
  /** Module path → package path (`envoy/authz`), `undefined` when it could not be read. */
  packages: ReadonlyMap<string, string | undefined>;
  data: Record<string, unknown>;
  entrypoints: readonly string[];
}

/**
 * Checks roots the way OPA does when it activates a bundle (v1/bundle/bundle.go
 * validateAndInjectDefaults): no two roots overlap, every module's package, every wasm entrypoint
 * and every data leaf lies under a root. Throws `invalid_bundle` naming what lies outside.
 * Modules whose package could not be read are left to `opa check`.
 */
export function checkRoots(roots: readonly string[], content: RootedContent, source = 'manifest'): void {
  const fail = (message: string, detail: Record<string, unknown>): never => {
    throw new PortcullisError('invalid_bundle', `${source}: ${message}`, {
      details: [{ file: '.manifest', ...detail, message }],
    });
  };
  for (let i = 0; i < roots.length; i++) {
    for (let j = i + 1; j < roots.length; j++) {
      const a = roots[i]!;
      const b = roots[j]!;
      if (rootsOverlap(a, b))
        fail(`roots ${JSON.stringify(a)} and ${JSON.stringify(b)} overlap`, { roots: [a, b] });
    }
  }
  for (const [file, pkg] of content.packages) {
    if (pkg !== undefined && !rootsContain(roots, pkg)) {
      fail(`roots ${JSON.stringify(roots)} do not permit package ${JSON.stringify(pkg)} of ${file}`, {
        module: file,
      });
    }
  }
  for (const entrypoint of content.entrypoints) {
    if (!rootsContain(roots, entrypoint)) {
      fail(`roots ${JSON.stringify(roots)} do not permit entrypoint ${JSON.stringify(entrypoint)}`, {
        entrypoint,
      });
    }
  }
  const walk = (node: unknown, path: string[]): void => {
    const joined = path.join('/');
    if (path.length > 0 && rootsContain(roots, joined)) return;
    // An object above a root is only a container on the way to it; anything else here is data
    // the bundle does not own.
    if (isJsonObject(node) && roots.some((root) => path.length === 0 || rootContains(joined, root))) {
      for (const key of Object.keys(node)) walk(node[key], [...path, key]);
      return;
    }
    fail(`roots ${JSON.stringify(roots)} do not permit data at /${joined}`, { data: `/${joined}` });
  };
  walk(content.data, []);
}
