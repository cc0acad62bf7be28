#!/usr/bin/env node
// Prints the README's configuration table: every environment variable, who reads it, its default and meaning.
//
// Sources: each service's spec, the `*_CONFIG` object that `services/<name>/src/config.ts` exports
// (the one `loadConfig` reads, rows made by the runtime's `describeConfig`); every `*_SETTINGS`
// export (`{ VAR: { doc, defaultDoc } }`) of scripts/stack/settings.mjs and of `@portcullis/cli`;
// and, listed below, the variables that the runtime and scripts/tools.mjs read outside any spec.
//
//   node scripts/config-docs.mjs            print the table (markdown)
//   node scripts/config-docs.mjs --write    replace the table between the config-table markers in README.md
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as stackSettings from './stack/settings.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const README_START = '<!-- config-table:start -->';
export const README_END = '<!-- config-table:end -->';

/** Read directly from the environment, outside a service's spec. */
const RUNTIME_SETTINGS = {
  LOG_LEVEL: {
    defaultDoc: '`info`',
    doc: 'Lowest level of the JSON log lines a service writes (pino levels).',
  },
  SHUTDOWN_DEADLINE_MS: {
    defaultDoc: '`10000`',
    doc: 'Milliseconds a service may take to finish in-flight work on SIGTERM before it exits.',
  },
  OTEL_EXPORTER_OTLP_ENDPOINT: {
    defaultDoc: '(unset: tracing off)',
    doc: 'OTLP endpoint that traces are exported to; tracing is on only when set.',
  },
  OTEL_SERVICE_NAME: { defaultDoc: '`portcullis-<service>`', doc: 'Service name on exported traces.' },
};
const TOOLS_SETTINGS = {
  OPA_BIN: {
    defaultDoc: '`opa` v1.22.3 on PATH, else built into the tool cache',
    doc: 'The opa binary that `scripts/tools.mjs`, `npm start` and the tests use.',
  },
  KAFKA_HOME: {
    defaultDoc: '(unset)',
    doc: 'An unpacked Kafka distribution to use instead of fetching the jars.',
  },
  HELM_BIN: { defaultDoc: '(unset)', doc: 'A helm binary to use instead of building one.' },
  XDG_CACHE_HOME: { defaultDoc: '`~/.cache`', doc: 'The tool cache lives in `$XDG_CACHE_HOME/portcullis`.' },
};

/** Whether `value` is a spec of settings as `env.*` makes them (parse, doc, required, default). */
function isSpec(value) {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.values(value).length > 0 &&
    Object.values(value).every((s) => typeof s?.parse === 'function' && typeof s?.doc === 'string')
  );
}

/**
 * `[{ service, spec }]` for every `services/<name>/src/config.ts`, by service name. A config.ts
 * without exactly one `*_CONFIG` spec export is an error: a service must not drop out of the docs.
 */
export async function serviceSpecs(root = ROOT) {
  const out = [];
  const names = (await readdir(join(root, 'services'), { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  for (const service of names) {
    const file = join(root, 'services', service, 'src', 'config.ts');
    const exists = await readFile(file, 'utf8').then(
      () => true,
      () => false,
    );
    if (!exists) continue;
    const module = await import(pathToFileURL(file).href);
    const specs = Object.entries(module).filter(([name, value]) => name.endsWith('_CONFIG') && isSpec(value));
    if (specs.length !== 1) {
      throw new Error(
        `${file} exports ${specs.length} *_CONFIG specs (${specs.map(([n]) => n).join(', ') || 'none'}); expected one`,
      );
    }
    out.push({ service, spec: specs[0][1] });
  }
  return out;
}

/** `{doc, defaultDoc}` entries as settings describeConfig can render. */
function asSpec(entries) {
  return Object.fromEntries(
    Object.entries(entries).map(([name, { doc, defaultDoc }]) => [
      name,
      { parse: String, default: undefined, required: false, doc, defaultDoc },
    ]),
  );
}

/**
 * The markdown table. Rows that read the same in several services are merged, their readers
 * listed together; rows are sorted by variable, so a service's own variables sit together.
 */
export async function configTable(root = ROOT) {
  const { describeConfig } = await import('@portcullis/runtime');
  const cli = await import('@portcullis/cli');
  const settingsOf = (module) =>
    Object.entries(module)
      .filter(([name]) => name.endsWith('_SETTINGS'))
      .map(([, entries]) => asSpec(entries));
  const sources = [
    ...(await serviceSpecs(root)).map(({ service, spec }) => ({ reader: `\`${service}\``, spec })),
    { reader: 'every service', spec: asSpec(RUNTIME_SETTINGS) },
    ...settingsOf(stackSettings).map((spec) => ({ reader: '`npm start`', spec })),
    ...settingsOf(cli).map((spec) => ({ reader: 'CLI', spec })),
    { reader: 'tools', spec: asSpec(TOOLS_SETTINGS) },
  ];
  const rows = new Map();
  for (const { reader, spec } of sources) {
    for (const [name, setting] of Object.entries(spec)) {
      // describeConfig's row is `| \`NAME\` | default | meaning |`: the reader column goes after the name.
      const [row] = describeConfig({ [name]: setting });
      const rest = row.slice(`| \`${name}\` |`.length);
      const key = `${name}\u0000${rest}`;
      const entry = rows.get(key) ?? { name, rest, readers: [] };
      entry.readers.push(reader);
      rows.set(key, entry);
    }
  }
  const sorted = [...rows.values()].sort(
    (a, b) => a.name.localeCompare(b.name) || a.rest.localeCompare(b.rest),
  );
  return [
    '| Variable | Read by | Default | Meaning |',
    '|---|---|---|---|',
    ...sorted.map((r) => `| \`${r.name}\` | ${r.readers.join(', ')} |${r.rest}`),
  ].join('\n');
}

/** `readme` with the text between the config-table markers replaced by `table`. */
export function withTable(readme, table) {
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start === -1 || end < start) {
    throw new Error(`README.md has no ${README_START} … ${README_END} block to write the table into`);
  }
  return `${readme.slice(0, start + README_START.length)}\n${table}\n${readme.slice(end)}`;
}

async function main() {
  const { register } = await import('tsx/esm/api');
  register();
  const table = await configTable();
  if (process.argv.includes('--write')) {
    const file = join(ROOT, 'README.md');
    await writeFile(file, withTable(await readFile(file, 'utf8'), table));
    process.stdout.write(`updated the configuration table in ${file}\n`);
  } else {
    process.stdout.write(`${table}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
