// Keeps the workspace boundaries of DESIGN.md visible: imports cross workspaces only by package name.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const WORKSPACE_DIRS = ['packages', 'services'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === 'node_modules') return [];
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs|js)$/.test(name) ? [p] : [];
  });
}

function workspaceOf(file: string): string | undefined {
  const [top, name] = relative(ROOT, file).split(sep);
  return top && WORKSPACE_DIRS.includes(top) && name ? `${top}/${name}` : undefined;
}

const files = WORKSPACE_DIRS.flatMap((d) =>
  readdirSync(join(ROOT, d)).flatMap((w) => sourceFiles(join(ROOT, d, w))),
);
const IMPORT = /(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g;

describe('workspace boundaries', () => {
  it('finds the workspaces', () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it('no file reaches into another workspace by a relative path', () => {
    const offences: string[] = [];
    for (const file of files) {
      const own = workspaceOf(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        if (!spec?.startsWith('.')) continue;
        const target = workspaceOf(resolve(dirname(file), spec));
        if (target !== undefined && target !== own) offences.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
    expect(offences).toEqual([]);
  });

  it('packages never import services, and services never import each other', () => {
    const offences: string[] = [];
    const services = readdirSync(join(ROOT, 'services'));
    for (const file of files) {
      const own = workspaceOf(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const m = spec?.match(/^@portcullis\/([\w-]+)/);
        if (!m?.[1] || !services.includes(m[1])) continue;
        if (own !== `services/${m[1]}`) offences.push(`${relative(ROOT, file)} imports ${spec}`);
      }
    }
    expect(offences).toEqual([]);
  });
});
