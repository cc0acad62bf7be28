// Shared test fixtures: the opa binary, the repo's example bundles compiled to revisions, RBAC data at scale.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileWasm, type Revision } from '../src/index.ts';

export function opaBin(): string {
  const bin = process.env['OPA_BIN'];
  if (bin === undefined || bin === '')
    throw new Error('OPA_BIN is not set (the vitest global setup provides it)');
  return bin;
}

export const POLICIES_DIR = fileURLToPath(new URL('../../../policies/', import.meta.url));

/** Compiles `policies/<name>` (its .rego files but not its tests, its data.json, its bundle.json entrypoints). */
export async function compilePolicyDir(
  name: string,
  overrides: { data?: unknown; revision?: number } = {},
): Promise<Revision> {
  const dir = join(POLICIES_DIR, name);
  const modules: Record<string, string> = {};
  for (const file of await readdir(dir)) {
    if (file.endsWith('.rego') && !file.endsWith('_test.rego'))
      modules[file] = await readFile(join(dir, file), 'utf8');
  }
  const { entrypoints } = JSON.parse(await readFile(join(dir, 'bundle.json'), 'utf8')) as {
    entrypoints: string[];
  };
  const data = overrides.data ?? JSON.parse(await readFile(join(dir, 'data.json'), 'utf8'));
  const compiled = await compileWasm({ opaBin: opaBin(), modules, data, entrypoints });
  return {
    bundle: name,
    revision: overrides.revision ?? 1,
    digest: compiled.digest,
    wasm: compiled.wasm,
    data: compiled.data,
    entrypoints,
  };
}

/** Compiles one module with the given entrypoints into a revision of bundle `bundle`. */
export async function compileRevision(
  bundle: string,
  rego: string,
  entrypoints: string[],
  options: { data?: unknown; revision?: number } = {},
): Promise<Revision> {
  const compiled = await compileWasm({
    opaBin: opaBin(),
    modules: { 'policy.rego': rego },
    data: options.data,
    entrypoints,
  });
  return {
    bundle,
    revision: options.revision ?? 1,
    digest: compiled.digest,
    wasm: compiled.wasm,
    data: compiled.data,
    entrypoints,
  };
}

export interface RbacData {
  roles: Record<string, { grants: { action: string; resource: string }[] }>;
  bindings: Record<string, string[]>;
}

/**
 * RBAC data for policies/rbac at any scale, deterministic: role-i grants `read` on `res-i/*` and, for every
 * third role, `write` too; subject-j is bound to roles j mod R and (j*7) mod R.
 */
export function generateRbacData(roleCount: number, bindingCount: number): RbacData {
  const roles: RbacData['roles'] = {};
  for (let i = 0; i < roleCount; i++) {
    const grants = [{ action: 'read', resource: `res-${i}/*` }];
    if (i % 3 === 0) grants.push({ action: 'write', resource: `res-${i}/*` });
    roles[`role-${i}`] = { grants };
  }
  const bindings: RbacData['bindings'] = {};
  for (let j = 0; j < bindingCount; j++) {
    bindings[`subject-${j}`] = [...new Set([`role-${j % roleCount}`, `role-${(j * 7) % roleCount}`])];
  }
  return { roles, bindings };
}
