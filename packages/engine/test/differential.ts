// Differential harness: evaluates Rego expressions with the real `opa eval` and through our WASM engine.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadRevision } from '../src/index.ts';
import { parseValue } from '../src/rego-json.ts';
import { compileRevision, opaBin } from './fixtures.ts';

const run = promisify(execFile);

export interface DiffCase {
  name: string;
  /** A Rego expression; the case compares its value (or its being undefined) between OPA and the engine. */
  expr: string;
}

export interface DiffOutcome {
  opa: unknown;
  wasm: unknown;
}

/** Rego string literal for any JS string. */
export const lit = (s: string): string => JSON.stringify(s);

/**
 * Compiles every case into one module (`r<i> := x if { x := <expr> }`), evaluates the package with
 * `opa eval` (non-strict builtin errors, as in OPA's default) and with the engine, and returns both values
 * per case name: `undefined` where the rule is undefined.
 */
export async function differential(cases: readonly DiffCase[]): Promise<Map<string, DiffOutcome>> {
  const rego = ['package diff', '', ...cases.map((c, i) => `r${i} := x if { x := ${c.expr} }`)].join('\n');
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-diff-'));
  let opaDoc: Record<string, unknown>;
  try {
    await writeFile(join(dir, 'diff.rego'), rego);
    const { stdout } = await run(
      opaBin(),
      ['eval', '--format', 'json', '-d', join(dir, 'diff.rego'), 'data.diff'],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    ).catch((err: { stdout?: string; message: string }) => {
      throw new Error(`opa eval failed: ${err.stdout ?? ''} ${err.message}`);
    });
    const out = parseValue(stdout) as { result: { expressions: { value: Record<string, unknown> }[] }[] };
    opaDoc = out.result[0]!.expressions[0]!.value;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const policy = await loadRevision(await compileRevision('diff', rego, ['diff']));
  const { resultJson } = policy.evaluateJson('diff');
  const wasmDoc = parseValue(resultJson ?? '{}') as Record<string, unknown>;
  const outcomes = new Map<string, DiffOutcome>();
  cases.forEach((c, i) => {
    if (outcomes.has(c.name)) throw new Error(`duplicate case name ${c.name}`);
    outcomes.set(c.name, { opa: opaDoc[`r${i}`], wasm: wasmDoc[`r${i}`] });
  });
  return outcomes;
}

/** `opa eval` of one query over the given policy/data files and input; the query's value (undefined if none). */
export async function opaEval(query: string, files: string[], input?: unknown): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-eval-'));
  try {
    const args = ['eval', '--format', 'json', ...files.flatMap((f) => ['-d', f])];
    if (input !== undefined) {
      await writeFile(join(dir, 'input.json'), JSON.stringify(input));
      args.push('-i', join(dir, 'input.json'));
    }
    const { stdout } = await run(opaBin(), [...args, query], { maxBuffer: 64 * 1024 * 1024 }).catch(
      (err: { stdout?: string; message: string }) => {
        throw new Error(`opa eval failed: ${err.stdout ?? ''} ${err.message}`);
      },
    );
    const out = parseValue(stdout) as { result?: { expressions: { value: unknown }[] }[] };
    return out.result?.[0]?.expressions[0]?.value;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
