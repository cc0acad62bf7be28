// opa's reports (check and test JSON, build's text) turned into error details relative to the bundle root.
import type { ErrorDetail } from '@portcullis/runtime';

export interface RegoErrorDetail extends ErrorDetail {
  file: string;
  row: number;
  col: number;
  message: string;
  code: string;
}

export interface TestFailureDetail extends ErrorDetail {
  test: string;
  file: string;
  row: number;
  col: number;
  message?: string;
}

export interface TestSummary {
  passed: number;
  failed: number;
  errored: number;
  skipped: number;
  total: number;
  failures: TestFailureDetail[];
}

/** A path opa printed, relative to the bundle root: without `root/`, `./` or a leading `/`. */
export function bundleRelative(file: string, root: string): string {
  let path = file;
  if (path.startsWith(`${root}/`)) path = path.slice(root.length + 1);
  return path.replace(/^\.\//, '').replace(/^\/+/, '');
}

function stripRoot(text: string, root: string): string {
  return text.split(`${root}/`).join('');
}

function parseJson(text: string): unknown {
  const start = text.search(/[[{]/);
  if (start === -1) return undefined;
  try {
    return JSON.parse(text.slice(start));
  } catch {
    return undefined;
  }
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function num(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/**
 * The errors of `opa check --format json` (printed on stderr as `{"errors": [...]}`), or
 * `undefined` when its output holds no such report (then the caller falls back to the raw text).
 */
export function parseCheckErrors(output: string, root: string): RegoErrorDetail[] | undefined {
  const errors = record(parseJson(output))['errors'];
  if (!Array.isArray(errors) || errors.length === 0) return undefined;
  return errors.map((raw) => {
    const err = record(raw);
    const location = record(err['location']);
    return {
      file: bundleRelative(str(location['file']), root),
      row: num(location['row']),
      col: num(location['col']),
      message: stripRoot(str(err['message']), root),
      code: str(err['code']) || 'rego_compile_error',
    };
  });
}

/** The results of `opa test --format json` (a JSON array on stdout), or `undefined` when there is none. */
export function parseTestResults(output: string, root: string): TestSummary | undefined {
  const results = parseJson(output);
  if (!Array.isArray(results)) return undefined;
  const summary: TestSummary = {
    passed: 0,
    failed: 0,
    errored: 0,
    skipped: 0,
    total: results.length,
    failures: [],
  };
  for (const raw of results) {
    const result = record(raw);
    const location = record(result['location']);
    const where = {
      test: `${str(result['package'])}.${str(result['name'])}`,
      file: bundleRelative(str(location['file']), root),
      row: num(location['row']),
      col: num(location['col']),
    };
    if (result['error'] !== undefined) {
      const error = record(result['error']);
      const at = record(error['location']);
      const position = at['file']
        ? ` (at ${bundleRelative(str(at['file']), root)}:${num(at['row'])}:${num(at['col'])})`
        : '';
      summary.errored++;
      summary.failures.push({
        ...where,
        message: `${str(error['code']) || 'error'}: ${stripRoot(str(error['message']), root)}${position}`,
      });
    } else if (result['fail'] === true) {
      summary.failed++;
      summary.failures.push({ ...where, message: 'test failed (its body was undefined or false)' });
    } else if (result['skip'] === true) {
      summary.skipped++;
    } else {
      summary.passed++;
    }
  }
  return summary;
}

const UNDEFINED_ENTRYPOINT = /entrypoint "([^"]+)" does not refer to a rule or policy decision/g;

/** Entrypoints `opa build` says no rule defines (it names the first one it meets). */
export function parseUndefinedEntrypoints(output: string): string[] {
  return [...output.matchAll(UNDEFINED_ENTRYPOINT)].map((m) => m[1]!);
}

/**
 * Errors from `opa build`'s text output (`file:row: code: message`), for failures `opa check`
 * does not report (WASM-specific compile errors); a single detail with the text otherwise.
 */
export function parseBuildErrors(output: string, root: string): ErrorDetail[] {
  const text = stripRoot(output, root).trim();
  const details: ErrorDetail[] = [];
  for (const m of text.matchAll(/(?:^|\s)([^\s:]+\.rego):(\d+):(?:(\d+):)? ([a-z_]+): ([^\n]*)/g)) {
    details.push({
      file: bundleRelative(m[1]!, root),
      row: Number(m[2]),
      col: m[3] === undefined ? 0 : Number(m[3]),
      code: m[4]!,
      message: m[5]!,
    });
  }
  return details.length > 0 ? details : [{ message: text.replace(/^error: /, '') }];
}
