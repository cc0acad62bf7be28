// Hand-made tar archives for the reader's tests, including the malformed and malicious ones no tool writes.
import { gzipSync } from 'node:zlib';
import { Header, type HeaderData, Pax } from 'tar';

export interface RawEntry {
  path: string;
  type?: NonNullable<HeaderData['type']>;
  body?: Uint8Array | string;
  linkpath?: string;
  /** Declared size when it should differ from the body's. */
  size?: number;
  /** Emit a PAX header carrying these fields before the entry. */
  pax?: HeaderData;
  /** Emit a GNU long-name record with this path before the entry. */
  gnuLongPath?: string;
}

const BLOCK = 512;

function block(data: HeaderData): Buffer {
  const buf = Buffer.alloc(BLOCK);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), uname: '', gname: '', ...data }).encode(
    buf,
    0,
  );
  return buf;
}

function padded(body: Buffer): Buffer {
  const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return Buffer.concat([body, Buffer.alloc(pad)]);
}

export function rawTar(entries: RawEntry[], { end = true }: { end?: boolean } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const entry of entries) {
    if (entry.pax) chunks.push(new Pax(entry.pax).encode());
    if (entry.gnuLongPath !== undefined) {
      const name = Buffer.from(`${entry.gnuLongPath}\0`);
      chunks.push(
        block({ path: '././@LongLink', type: 'NextFileHasLongPath', size: name.length }),
        padded(name),
      );
    }
    const body = Buffer.from(entry.body ?? '');
    chunks.push(
      block({
        path: entry.path,
        type: entry.type ?? 'File',
        size: entry.size ?? (entry.type === undefined || entry.type === 'File' ? body.length : 0),
        ...(entry.linkpath === undefined ? {} : { linkpath: entry.linkpath }),
      }),
    );
    if (body.length > 0) chunks.push(padded(body));
  }
  if (end) chunks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(chunks);
}

export function rawTarGz(entries: RawEntry[], options?: { end?: boolean }): Buffer {
  return gzipSync(rawTar(entries, options));
}
