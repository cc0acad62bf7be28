// Checking, testing and compiling a bundle source to WASM with the real opa, in a temp dir that never outlives the call.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { readBundleArchive } from '@portcullis/bundle';
import { PortcullisError } from '@portcullis/runtime';
import {
  type BundleSource,
  DEFAULT_SOURCE_LIMITS,
  isTestModule,
  type SourceLimits,
  validateSource,
} from './bundle-source.ts';
import {
  parseBuildErrors,
  parseCheckErrors,
  parseTestResults,
  parseUndefinedEntrypoints,
  type RegoErrorDetail,
} from './opa-diagnostics.ts';
import { type OpaRunResult, opaVersion, runOpa } from './opa-process.ts';
import { readWasmBuiltins } from './wasm-builtins.ts';

export interface CompileOptions {
  opaBin: string;
  /** Run `opa check --strict` (unused variables and imports, shadowing, deprecated builtins…). */
  strict: boolean;
  /** Deadline for the whole compile; every opa process is killed with its group when it passes. */
  timeoutMs: number;
  /** Which of the builtins the WASM imports the engine cannot provide (`@portcullis/engine`'s unsupportedBuiltins). */
  unsupported?: (builtins: string[]) => string[];
  /** Where the per-compile temp dir is created; default os.tmpdir(). */
  tmpDir?: string;
  limits?: Partial<SourceLimits>;
}

export interface CompiledBundle {
  /** The source modules (tests included), paths normalised. */
  modules: Record<string, string>;
  data: Record<string, unknown>;
  /** Normalised (`envoy/authz/allow`), deduplicated, in the given order: entrypoint id i of the WASM is entrypoints[i]. */
  entrypoints: string[];
  /** The compiled module (test modules excluded). */
  wasm: Buffer;
  /** Builtins the WASM imports from its host, sorted. */
  builtins: string[];
  opaVersion: string;
  /** `opa test` results; all zero when the bundle has no `*_test.rego`. */
  tests: { passed: number; total: number; skipped: number };
}

const SOURCE_DIR = 'bundle';
const OUTPUT_FILE = 'compiled.tar.gz';
const MAX_COMPILED_BYTES = 256 * 1024 * 1024;

/**
 * Checks, tests and compiles a bundle source with the real opa:
 * `opa check --strict --format json` (only when `strict`), `opa test --format json` (only when
 * a `*_test.rego` exists) and `opa build -t wasm -e <ep>…` (test modules excluded) run
 * concurrently, because opa's startup dominates small bundles. Results are taken in that order
 * of precedence (compile errors, then test failures, then build errors), processes whose result
 * no longer matters are killed, and a non-strict compile that fails runs `opa check` then to
 * report the errors with their locations.
 * Throws PortcullisError: invalid_bundle / payload_too_large / validation_failed (source),
 * rego_compile_error (details: file, row, col, message, code, relative to the bundle root),
 * rego_test_failed (details: test, file, row, col, message), entrypoint_undefined (details:
 * entrypoint), unsupported_builtin (details: builtin), timeout.
 * The temp dir is removed before the promise settles, whatever the outcome.
 */
export async function compileBundle(source: BundleSource, opts: CompileOptions): Promise<CompiledBundle> {
  const valid = validateSource(source, { ...DEFAULT_SOURCE_LIMITS, ...opts.limits });
  const deadline = Date.now() + opts.timeoutMs;
  const hasTests = Object.keys(valid.modules).some(isTestModule);
  const abort = new AbortController();
  const pending: Promise<unknown>[] = [];
  const track = <T>(promise: Promise<T>): Promise<T> => {
    pending.push(promise.catch(() => undefined));
    return promise;
  };
  const version = track(opaVersion(opts.opaBin));

  const dir = await mkdtemp(join(opts.tmpDir ?? tmpdir(), 'portcullis-compile-'));
  try {
    const root = join(dir, SOURCE_DIR);
    await writeSource(root, valid.modules, valid.dataJson);
    const run = (args: string[]) =>
      track(runOpa(opts.opaBin, args, { cwd: root, deadline, signal: abort.signal }));
    const buildArgs = (entrypoints: string[]) => [
      'build',
      '-t',
      'wasm',
      ...entrypoints.flatMap((e) => ['-e', e]),
      '--ignore',
      '*_test.rego',
      // The WASM does not depend on data (the engine sets it at run time); not loading it keeps
      // large data out of the build's time and output.
      '--ignore',
      'data.json',
      '-b',
      '-o',
      join(dir, OUTPUT_FILE),
      '.',
    ];

    const checkArgs = ['check', ...(opts.strict ? ['--strict'] : []), '--format', 'json', '-b', '.'];
    // Build first: it is the longest of the three. Without --strict, `opa test` and `opa build`
    // find every error `opa check` would, so check only runs to describe a failure.
    const build = run(buildArgs(valid.entrypoints));
    const test = hasTests ? run(['test', '--format', 'json', '-b', '.']) : undefined;
    const check = opts.strict ? run(checkArgs) : undefined;
    const throwCompileErrors = async () => throwOnCheckErrors(await (check ?? run(checkArgs)), root);

    if (check !== undefined) await throwCompileErrors();
    let tests = { passed: 0, total: 0, skipped: 0 };
    if (test !== undefined) {
      const tested = await test;
      // No JSON report means opa could not load or compile the modules.
      if (parseTestResults(tested.stdout, root) === undefined) await throwCompileErrors();
      tests = testSummary(tested, root);
    }
    const built = await build;
    if (built.exitCode !== 0) {
      const undefinedEntrypoints = await findUndefinedEntrypoints(built, valid.entrypoints, (eps) =>
        run(buildArgs(eps)),
      );
      if (undefinedEntrypoints.length > 0) {
        throw new PortcullisError(
          'entrypoint_undefined',
          `no rule defines entrypoint${undefinedEntrypoints.length > 1 ? 's' : ''} ${undefinedEntrypoints.join(', ')}`,
          { details: undefinedEntrypoints.map((entrypoint) => ({ entrypoint })) },
        );
      }
      if (check === undefined) await throwCompileErrors();
      const details = parseBuildErrors(allOutput(built), root);
      throw new PortcullisError('rego_compile_error', `opa build failed: ${summarise(details)}`, { details });
    }

    const compiled = readBundleArchive(await readFile(join(dir, OUTPUT_FILE)), {
      maxBytes: MAX_COMPILED_BYTES,
      maxFiles: Object.keys(valid.modules).length + 16,
    });
    if (compiled.wasm === undefined) {
      throw new PortcullisError('internal', 'opa build produced no policy.wasm');
    }
    const builtins = await readWasmBuiltins(compiled.wasm);
    const refused = opts.unsupported?.(builtins) ?? [];
    if (refused.length > 0) {
      throw new PortcullisError(
        'unsupported_builtin',
        `the policy uses builtins the engine cannot run: ${refused.join(', ')}`,
        {
          details: refused.map((builtin) => ({ builtin })),
        },
      );
    }
    return {
      modules: valid.modules,
      data: valid.data,
      entrypoints: valid.entrypoints,
      wasm: compiled.wasm,
      builtins,
      opaVersion: await version,
      tests,
    };
  } finally {
    abort.abort();
    await Promise.all(pending);
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeSource(root: string, modules: Record<string, string>, dataJson: string): Promise<void> {
  await mkdir(root);
  await writeFile(join(root, 'data.json'), dataJson, { flag: 'wx' });
  const dirs = new Set(Object.keys(modules).map((path) => dirname(join(root, path))));
  for (const d of dirs) await mkdir(d, { recursive: true });
  await Promise.all(
    Object.entries(modules).map(([path, text]) => writeFile(join(root, path), text, { flag: 'wx' })),
  );
}

function throwOnCheckErrors(result: OpaRunResult, root: string): void {
  if (result.exitCode === 0) return;
  const details: RegoErrorDetail[] | undefined =
    parseCheckErrors(result.stderr, root) ?? parseCheckErrors(result.stdout, root);
  if (details === undefined) {
    const fallback = parseBuildErrors(allOutput(result), root);
    throw new PortcullisError('rego_compile_error', `opa check failed: ${summarise(fallback)}`, {
      details: fallback,
    });
  }
  throw new PortcullisError('rego_compile_error', summarise(details), { details });
}

function testSummary(result: OpaRunResult, root: string): { passed: number; total: number; skipped: number } {
  const summary = parseTestResults(result.stdout, root);
  if (summary === undefined) {
    // No JSON report: opa could not load or compile the tests (check passed, so this is rare).
    const details = parseBuildErrors(allOutput(result), root);
    throw new PortcullisError('rego_compile_error', `opa test failed: ${summarise(details)}`, { details });
  }
  if (summary.failures.length > 0 || result.exitCode !== 0) {
    const names = summary.failures.map((f) => `${f.test} (${f.file}:${f.row})`).join(', ');
    throw new PortcullisError(
      'rego_test_failed',
      `${summary.failed} failed and ${summary.errored} errored of ${summary.total} tests: ${names}`,
      { details: summary.failures },
    );
  }
  return { passed: summary.passed, total: summary.total, skipped: summary.skipped };
}

/**
 * opa build names only the first entrypoint it cannot find; rebuilding without the ones already
 * named finds the rest (only on this error path, bounded by the number of entrypoints).
 */
async function findUndefinedEntrypoints(
  first: OpaRunResult,
  entrypoints: string[],
  rebuild: (entrypoints: string[]) => Promise<OpaRunResult>,
): Promise<string[]> {
  const found = parseUndefinedEntrypoints(allOutput(first)).filter((e) => entrypoints.includes(e));
  let result = first;
  while (found.length > 0 && result.exitCode !== 0) {
    const rest = entrypoints.filter((e) => !found.includes(e));
    if (rest.length === 0) break;
    result = await rebuild(rest);
    const more = parseUndefinedEntrypoints(allOutput(result)).filter((e) => rest.includes(e));
    if (more.length === 0) break;
    found.push(...more);
  }
  return entrypoints.filter((e) => found.includes(e));
}

/** opa build prints its errors on stdout, check and test on stderr: read both. */
function allOutput(result: OpaRunResult): string {
  return [result.stderr, result.stdout].filter((text) => text.trim() !== '').join('\n');
}

function summarise(details: readonly Record<string, unknown>[]): string {
  const first = details[0];
  if (first === undefined) return 'unknown error';
  const where = first['file']
    ? `${String(first['file'])}:${String(first['row'] ?? 0)}:${String(first['col'] ?? 0)}: `
    : '';
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : '';
  return `${where}${String(first['message'] ?? '')}${more}`;
}
