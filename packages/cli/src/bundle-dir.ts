// Reads a bundle directory (Rego files, data.json files, an optional bundle.json) into API content.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';

export interface BundleContent {
  name: string;
  modules: Record<string, string>;
  data: Record<string, unknown>;
  entrypoints: string[];
}

/** `bundle.json` in the directory: `{"name"?: string, "entrypoints": string[]}`. */
interface BundleDescriptor {
  name?: string;
  entrypoints?: string[];
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}

function setAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  if (path.length === 0) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new Error('a top-level data.json must hold a JSON object');
    }
    Object.assign(target, value);
    return;
  }
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node[key] = typeof next === 'object' && next !== null ? next : {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

export async function readBundleDir(
  dir: string,
  overrides: { name?: string; entrypoints?: string[] } = {},
): Promise<BundleContent> {
  if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  const modules: Record<string, string> = {};
  const data: Record<string, unknown> = {};
  let descriptor: BundleDescriptor = {};
  for (const file of await walk(dir)) {
    const rel = relative(dir, file).split(sep).join('/');
    if (rel.endsWith('.rego')) modules[rel] = await readFile(file, 'utf8');
    else if (rel === 'bundle.json') descriptor = JSON.parse(await readFile(file, 'utf8')) as BundleDescriptor;
    else if (basename(rel) === 'data.json') {
      let value: unknown;
      try {
        value = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        throw new Error(`${rel}: invalid JSON: ${(err as Error).message}`);
      }
      setAt(data, rel.split('/').slice(0, -1), value);
    }
  }
  const entrypoints = overrides.entrypoints?.length ? overrides.entrypoints : (descriptor.entrypoints ?? []);
  if (entrypoints.length === 0) {
    throw new Error(`${dir}: no entrypoints: add --entrypoint or a bundle.json with {"entrypoints": [...]}`);
  }
  if (Object.keys(modules).length === 0) throw new Error(`${dir}: no .rego files`);
  return { name: overrides.name ?? descriptor.name ?? basename(dir), modules, data, entrypoints };
}
