// Compiles Rego modules to an OPA WASM bundle with the real `opa build`, in a throwaway directory.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { readBundleArchive } from '@portcullis/bundle';
import { sha256Hex } from './digest.ts';
import { EngineError } from './engine-error.ts';
import { requiredBuiltins } from './wasm-policy.ts';

export interface CompileWasmOptions {
  opaBin: string;
  /** File name (may contain `/`) → Rego source. */
  modules: Record<string, string>;
  /** Becomes the bundle's data.json. */
  data?: unknown;
  /** `envoy/authz/allow` style; at least one. */
  entrypoints: string[];
  /** Kill `opa` after this long (default 30 s). */
  timeoutMs?: number;
  /** Where the throwaway build directory is made (default: the OS temp dir); it is removed in every case. */
  tmpDir?: string;
}

export interface CompiledWasm {
  wasm: Uint8Array;
  /** Builtins the module leaves to the host (check them with `unsupportedBuiltins`). */
  builtins: string[];
  entrypoints: string[];
  /** The OPA bundle `opa build` wrote (policy.wasm, data.json, the Rego sources, .manifest). */
  bundle: Uint8Array;
  /** sha256 hex of `bundle`. */
  digest: string;
  data: Record<string, unknown>;
}

export async function compileWasm(options: CompileWasmOptions): Promise<CompiledWasm> {
  if (options.entrypoints.length === 0)
    throw new EngineError('compile_failed', 'at least one entrypoint is required');
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'portcullis-build-'));
  try {
    const src = join(dir, 'src');
    await mkdir(src);
    for (const [name, source] of Object.entries(options.modules)) {
      const rel = normalize(name);
      if (rel.startsWith('..') || rel.startsWith('/') || !rel.endsWith('.rego')) {
        throw new EngineError('compile_failed', `bad module name ${JSON.stringify(name)}`, {
          details: { module: name },
        });
      }
      await mkdir(dirname(join(src, rel)), { recursive: true });
      await writeFile(join(src, rel), source);
    }
    if (options.data !== undefined) await writeFile(join(src, 'data.json'), JSON.stringify(options.data));
    const out = join(dir, 'bundle.tar.gz');
    // `-b .` from inside src keeps archive paths relative (`authz/policy.rego`), so the same sources give the
    // same bytes and digest wherever they were built.
    const args = [
      'build',
      '-t',
      'wasm',
      ...options.entrypoints.flatMap((e) => ['-e', e]),
      '-o',
      out,
      '-b',
      '.',
    ];
    await run(options.opaBin, args, src, options.timeoutMs ?? 30_000);
    const bundle = new Uint8Array(await readFile(out));
    const archive = readBundleArchive(bundle, { maxBytes: 256 * 1024 * 1024, maxFiles: 100_000 });
    if (!archive.wasm) throw new EngineError('compile_failed', 'opa build produced no policy.wasm');
    return {
      wasm: archive.wasm,
      builtins: await requiredBuiltins(archive.wasm),
      entrypoints: archive.entrypoints ?? options.entrypoints,
      bundle,
      digest: sha256Hex(bundle),
      data: archive.data,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(bin: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer): void => {
      if (output.length < 64 * 1024) output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new EngineError('compile_failed', `cannot run ${bin}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut)
        reject(new EngineError('compile_timeout', `opa build did not finish within ${timeoutMs} ms`));
      else if (code === 0) resolve();
      else {
        reject(
          new EngineError(
            'compile_failed',
            `opa build failed (${signal ?? `exit ${code}`}): ${output.trim()}`,
            {
              details: { output },
            },
          ),
        );
      }
    });
  });
}
