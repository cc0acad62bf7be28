// Reads an OPA bundle (.tar.gz) as `opa build -t wasm` writes it: policy.wasm, data, manifest.
import { Parser, type ReadEntry } from 'tar';
import { EngineError } from './engine-error.ts';

export interface BundleArchive {
  /** Every regular file by its path inside the archive, without the leading slash (`policy.wasm`). */
  files: ReadonlyMap<string, Uint8Array>;
  /** `/policy.wasm` (the module the manifest names for the first entrypoint). */
  wasm: Uint8Array;
  /** All `data.json` files merged at their directory paths. */
  data: Record<string, unknown>;
  /** Entrypoints named in the manifest's `wasm` section (`envoy/authz/allow`). */
  entrypoints: string[];
  manifest: Record<string, unknown> | undefined;
}

export interface ReadBundleOptions {
  /** Upper bound on the sum of the files' sizes; a larger archive is `invalid_bundle`. Default 64 MiB. */
  maxBytes?: number;
}

/** Unpacks a bundle archive in memory. Throws `invalid_bundle` for anything but a well-formed WASM bundle. */
export function readBundleArchive(archive: Uint8Array, options: ReadBundleOptions = {}): BundleArchive {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const files = new Map<string, Uint8Array>();
  const problems: string[] = [];
  let total = 0;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      if (entry.type !== 'File') {
        entry.resume();
        return;
      }
      total += entry.size;
      if (total > maxBytes) {
        problems.push(`bundle exceeds ${maxBytes} bytes`);
        entry.resume();
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => files.set(entry.path.replace(/^\/+/, ''), Buffer.concat(chunks)));
    },
  });
  parser.on('error', (err: Error) => problems.push(err.message));
  parser.on('warn', (_code: string, message: string | Error) => problems.push(String(message)));
  // For an in-memory buffer the parser (and its gunzip) runs synchronously within end().
  parser.end(Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength));
  if (problems.length > 0) {
    throw new EngineError('invalid_bundle', `unreadable bundle archive: ${problems[0]}`, {
      details: problems,
    });
  }

  const manifestBytes = files.get('.manifest');
  const manifest =
    manifestBytes === undefined
      ? undefined
      : (parseJsonFile('.manifest', manifestBytes) as Record<string, unknown>);
  const wasmSection = Array.isArray(manifest?.['wasm'])
    ? (manifest['wasm'] as { entrypoint?: unknown; module?: unknown }[])
    : [];
  const entrypoints = wasmSection.map((w) => w.entrypoint).filter((e): e is string => typeof e === 'string');
  const modulePath =
    typeof wasmSection[0]?.module === 'string' ? wasmSection[0].module.replace(/^\/+/, '') : 'policy.wasm';
  const wasm = files.get(modulePath);
  if (wasm === undefined) throw new EngineError('invalid_bundle', `bundle has no ${modulePath}`);

  const data: Record<string, unknown> = {};
  for (const [path, bytes] of files) {
    if (path !== 'data.json' && !path.endsWith('/data.json')) continue;
    const value = parseJsonFile(path, bytes);
    const dirs = path.split('/').slice(0, -1);
    if (dirs.length === 0) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new EngineError('invalid_bundle', 'data.json at the bundle root must hold an object');
      }
      Object.assign(data, value);
      continue;
    }
    let node = data;
    for (const dir of dirs.slice(0, -1)) {
      const child = node[dir];
      if (typeof child === 'object' && child !== null) node = child as Record<string, unknown>;
      else {
        const fresh: Record<string, unknown> = {};
        node[dir] = fresh;
        node = fresh;
      }
    }
    node[dirs[dirs.length - 1]!] = value;
  }
  return { files, wasm, data, entrypoints, manifest };
}

function parseJsonFile(path: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new EngineError('invalid_bundle', `${path} is not valid JSON`, { cause });
  }
}
