// Test support: running the openssl CLI on files in throwaway directories.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `openssl <args>` in `cwd`; never throws for a non-zero exit, so tests can assert on failures. */
export function openssl(args: readonly string[], cwd: string, input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      [...args],
      { cwd, timeout: 60_000, maxBuffer: 8 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like `openssl` but rejects unless the exit code is 0. */
export async function opensslOk(args: readonly string[], cwd: string): Promise<string> {
  const result = await openssl(args, cwd);
  if (result.code !== 0)
    throw new Error(`openssl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

export async function makeTempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `portcullis-pki-${prefix}-`));
}

export async function writeFiles(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  await Promise.all(
    Object.entries(files).map(([name, content]) => fs.writeFile(path.join(dir, name), content)),
  );
}

export async function removeDir(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}
