// Deterministic .tar.gz writing: same files in, same bytes out (fixed metadata, order and gzip header).
import { crc32, deflateRawSync } from 'node:zlib';
import { Header, Pax } from 'tar';

export interface TarFile {
  /** Path as stored in the archive, e.g. `/data.json`. */
  path: string;
  bytes: Uint8Array;
}

const BLOCK = 512;
const EPOCH = new Date(0);
const GZIP_LEVEL = 9;

/**
 * A ustar archive of regular files sorted by path (byte order of their UTF-8), every entry with
 * mode 0644, uid/gid 0, empty owner names and mtime 0. Paths too long for ustar get a PAX header
 * that carries only the path.
 */
export function writeTar(files: readonly TarFile[]): Buffer {
  const sorted = [...files].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const chunks: Buffer[] = [];
  for (const file of sorted) {
    const fields = {
      path: file.path,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: file.bytes.byteLength,
      mtime: EPOCH,
      type: 'File' as const,
      uname: '',
      gname: '',
    };
    const header = Buffer.alloc(BLOCK);
    const needPax = new Header(fields).encode(header, 0);
    if (needPax) chunks.push(new Pax({ path: file.path }).encode());
    chunks.push(header, Buffer.from(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength));
    const padding = (BLOCK - (file.bytes.byteLength % BLOCK)) % BLOCK;
    if (padding > 0) chunks.push(Buffer.alloc(padding));
  }
  chunks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(chunks);
}

/**
 * Gzip with a fixed header (no name, mtime 0, OS "unknown") around raw deflate at a fixed level.
 * `zlib.gzipSync` would stamp the OS byte of the build platform; the deflate stream itself is
 * stable for a given zlib, i.e. for a given Node release.
 */
export function gzipDeterministic(bytes: Uint8Array): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x02, 0xff]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(bytes) >>> 0, 0);
  trailer.writeUInt32LE(bytes.byteLength % 2 ** 32, 4);
  return Buffer.concat([header, deflateRawSync(bytes, { level: GZIP_LEVEL }), trailer]);
}
