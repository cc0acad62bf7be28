// The disk cache of the last good bundle archive per bundle, so a decision point can serve before the PAP answers.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '@portcullis/bundle';
import type { Activation } from './activation.ts';

export interface CachedBundle {
  activation: Activation;
  /** The archive exactly as fetched; its sha256 is `activation.digest`. */
  archive: Buffer;
}

interface CacheFile {
  format: 1;
  bundle: string;
  revision: number;
  digest: string;
  activation_seq: number;
  activated_at?: string;
  archive: string;
}

const SUFFIX = '.bundle.json';

/**
 * One file per bundle, `<bundle>.bundle.json`, holding the activation and the archive (base64).
 * Writes go to a temporary file that is fsynced and renamed over the old one, so a crash leaves
 * either the previous entry or the new one, never a torn file. Reads re-check each archive's
 * digest: a damaged file is reported and skipped, never loaded.
 */
export class BundleCache {
  constructor(readonly dir: string) {}

  async write(entry: CachedBundle): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const { activation: a } = entry;
    const body: CacheFile = {
      format: 1,
      bundle: a.bundle,
      revision: a.revision,
      digest: a.digest,
      activation_seq: a.activationSeq,
      ...(a.activatedAt ? { activated_at: a.activatedAt.toISOString() } : {}),
      archive: entry.archive.toString('base64'),
    };
    const final = join(this.dir, fileName(a.bundle));
    const temp = `${final}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      const file = await open(temp, 'w', 0o600);
      try {
        await file.writeFile(JSON.stringify(body));
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temp, final);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await syncDir(this.dir);
  }

  /** Every readable entry; `damaged` lists files that were skipped and why. */
  async readAll(): Promise<{ entries: CachedBundle[]; damaged: { file: string; reason: string }[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], damaged: [] };
      throw err;
    }
    const entries: CachedBundle[] = [];
    const damaged: { file: string; reason: string }[] = [];
    for (const name of names.filter((n) => n.endsWith(SUFFIX)).sort()) {
      const file = join(this.dir, name);
      try {
        entries.push(parseEntry(await readFile(file, 'utf8')));
      } catch (err) {
        damaged.push({ file, reason: err instanceof Error ? err.message : String(err) });
      }
    }
    return { entries, damaged };
  }
}

function fileName(bundle: string): string {
  // Bundle names are [a-z0-9._-] already; encoding keeps that true for any name.
  return `${encodeURIComponent(bundle)}${SUFFIX}`;
}

function parseEntry(text: string): CachedBundle {
  const f = JSON.parse(text) as Partial<CacheFile>;
  if (
    f.format !== 1 ||
    typeof f.bundle !== 'string' ||
    typeof f.digest !== 'string' ||
    typeof f.archive !== 'string' ||
    !Number.isSafeInteger(f.revision) ||
    !Number.isSafeInteger(f.activation_seq)
  ) {
    throw new Error('not a bundle cache entry');
  }
  const archive = Buffer.from(f.archive, 'base64');
  if (sha256Hex(archive) !== f.digest) throw new Error('archive does not match its digest');
  const activation: Activation = {
    bundle: f.bundle,
    revision: f.revision!,
    digest: f.digest,
    activationSeq: f.activation_seq!,
  };
  if (f.activated_at) activation.activatedAt = new Date(f.activated_at);
  return { activation, archive };
}

/** Makes a rename durable: the directory entry is on disk, not only the file's blocks. */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic there.
  } finally {
    await handle.close();
  }
}
