// README.md documents every environment variable a service declares (its table is made by scripts/config-docs.mjs).
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configTable, README_END, README_START, serviceSpecs, withTable } from '../scripts/config-docs.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const specs = await serviceSpecs(ROOT);
const documented = (text: string, name: string) => text.includes(`| \`${name}\` |`);

describe('configuration docs', () => {
  it('finds a config spec for the PAP, at least', () => {
    expect(specs.map((s) => s.service)).toContain('pap');
  });

  it.each(specs.map(({ service, spec }) => [service, Object.keys(spec)] as const))(
    'README.md documents every variable of %s',
    async (service, names) => {
      const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
      const start = readme.indexOf(README_START);
      const end = readme.indexOf(README_END);
      expect(start, `README.md needs the ${README_START} … ${README_END} block`).toBeGreaterThan(-1);
      const table = readme.slice(start, end);
      const missing = names.filter((name) => !documented(table, name));
      expect(
        missing,
        `README.md lacks ${service}'s ${missing.join(', ')}: run \`node scripts/config-docs.mjs --write\``,
      ).toEqual([]);
    },
  );

  it('the generated table has a row for every declared variable', async () => {
    const table = await configTable(ROOT);
    const missing = specs.flatMap(({ spec }) => Object.keys(spec)).filter((name) => !documented(table, name));
    expect(missing).toEqual([]);
    for (const line of table.split('\n')) expect(line).toMatch(/^\|.*\|$/);
  });

  it.each([
    ['an empty block', `a\n${README_START}\n${README_END}\nb`, `a\n${README_START}\n| t |\n${README_END}\nb`],
    ['an old table', `${README_START}\n| old |\n${README_END}`, `${README_START}\n| t |\n${README_END}`],
  ])('withTable replaces %s', (_name, readme, expected) => {
    expect(withTable(readme, '| t |')).toBe(expected);
  });

  it('withTable refuses a README without the markers', () => {
    expect(() => withTable('# no table here', '| t |')).toThrow(/config-table:start/);
  });
});
