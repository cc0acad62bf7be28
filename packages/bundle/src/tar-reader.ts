// Safe in-memory reading of a .tar.gz: bounded decompression, regular files and directories only.
import { gunzipSync } from 'node:zlib';
import { PortcullisError } from '@portcullis/runtime';
import { Header, type HeaderData, Pax } from 'tar';
import { normalizeBundlePath } from './bundle-path.ts';

export interface TarLimits {
  /** Most bytes of file content, summed over all entries. */
  maxBytes: number;
  /** Most file and directory entries. */
  maxFiles: number;
  /** Most bytes of one file; defaults to `maxBytes`. */
  maxEntryBytes?: number;
}

export interface TarEntry {
  /** Normalised root-relative path (see normalizeBundlePath). */
  path: string;
  /** The path as the archive spelled it, for messages. */
  rawPath: string;
  bytes: Buffer;
}

const BLOCK = 512;
const META_TYPES = new Set<string>([
  'ExtendedHeader',
  'GlobalExtendedHeader',
  'NextFileHasLongPath',
  'OldGnuLongPath',
  'NextFileHasLongLinkpath',
]);
// PAX and GNU long-name records only carry a path and a few fields; anything bigger is hostile.
const MAX_META_BYTES = 64 * 1024;

function invalid(message: string, file?: string): PortcullisError {
  return new PortcullisError('invalid_bundle', message, {
    details: [file === undefined ? { message } : { file, message }],
  });
}

function tooLarge(message: string, file?: string): PortcullisError {
  return new PortcullisError('payload_too_large', message, {
    details: [file === undefined ? { message } : { file, message }],
  });
}

/** zlib's default: what a gzip stream whose size cannot be trusted is inflated into, chunk by chunk. */
const DEFAULT_CHUNK = 16 * 1024;
/** Deflate's best ratio is about 1032:1; a trailer claiming more is lying. */
const MAX_RATIO = 1032;

/**
 * How much output to inflate into at once. A gzip trailer ends with ISIZE, the uncompressed size
 * modulo 2^32; when it is plausible (within the ceiling and deflate's best ratio), the output goes
 * into one buffer of that size (plus one byte, so zlib sees room left and stops without allocating
 * another chunk) instead of 16 KiB chunks concatenated at the end. ISIZE is only a hint: a wrong one
 * (a lie, a multi-member stream, trailing bytes) costs chunks and a copy, never correctness, and
 * `maxOutputLength` still bounds the output.
 */
function outputChunkSize(bytes: Uint8Array, ceiling: number): number {
  const n = bytes.byteLength;
  const isize = (bytes[n - 4]! | (bytes[n - 3]! << 8) | (bytes[n - 2]! << 16) | (bytes[n - 1]! << 24)) >>> 0;
  if (isize === 0 || isize > ceiling || isize > n * MAX_RATIO) return DEFAULT_CHUNK;
  return Math.max(DEFAULT_CHUNK, isize + 1);
}

/**
 * Decompresses a gzip stream, stopping as soon as the output passes what the limits can justify
 * (content plus tar headers and padding), so a gzip bomb costs at most that much memory.
 */
export function gunzipBounded(bytes: Uint8Array, limits: TarLimits): Buffer {
  if (bytes.byteLength < 18 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) {
    throw invalid('the archive is not gzip-compressed (an OPA bundle is a .tar.gz)');
  }
  // Each entry needs at most a header, a PAX or long-name record and padding on top of its content.
  const ceiling = limits.maxBytes + (limits.maxFiles + 2) * (3 * BLOCK) + MAX_META_BYTES;
  try {
    return gunzipSync(bytes, { maxOutputLength: ceiling, chunkSize: outputChunkSize(bytes, ceiling) });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw tooLarge(
        `the archive decompresses to more than ${ceiling} bytes (limit ${limits.maxBytes} bytes of content)`,
      );
    }
    throw new PortcullisError('invalid_bundle', `the archive is not valid gzip: ${(err as Error).message}`, {
      cause: err,
      details: [{ message: 'invalid gzip stream' }],
    });
  }
}

/**
 * The regular files of a tar stream, in archive order. Directories are checked and counted but not
 * returned. Rejects (`invalid_bundle`) links, devices, FIFOs and unknown entry types, unsafe paths
 * (see normalizeBundlePath), duplicate paths, bad header checksums and truncated entries; rejects
 * (`payload_too_large`) too many entries and oversize files or totals. Every message names the entry.
 */
export function readTar(tar: Buffer, limits: TarLimits): TarEntry[] {
  const maxEntryBytes = limits.maxEntryBytes ?? limits.maxBytes;
  const entries: TarEntry[] = [];
  const seen = new Map<string, 'file' | 'directory'>();
  let total = 0;
  let count = 0;
  let pax: HeaderData | undefined;
  let longPath: string | undefined;
  let offset = 0;

  while (offset + BLOCK <= tar.length) {
    if (isZeroBlock(tar, offset)) break;
    // PAX and GNU long-name fields are applied here, not by Header, which would prepend the ustar
    // prefix to a PAX path.
    const header = new Header(tar, offset);
    if (!header.cksumValid) {
      throw invalid(`tar header at offset ${offset} has a bad checksum (not a tar archive?)`);
    }
    const isMeta = META_TYPES.has(header.type);
    const size = (isMeta ? undefined : pax?.size) ?? header.size ?? 0;
    const bodyStart = offset + BLOCK;
    const bodyEnd = bodyStart + size;
    const rawPath = (isMeta ? undefined : (pax?.path ?? longPath)) ?? header.path ?? '';
    const name = JSON.stringify(rawPath);
    if (!Number.isSafeInteger(size) || size < 0) throw invalid(`entry ${name} has an invalid size`, rawPath);
    if (bodyEnd > tar.length) throw invalid(`entry ${name} is truncated`, rawPath);
    const body = () => tar.subarray(bodyStart, bodyEnd);
    offset = bodyStart + Math.ceil(size / BLOCK) * BLOCK;

    if (isMeta) {
      if (size > MAX_META_BYTES) {
        throw tooLarge(`a ${header.type} record of ${size} bytes is over ${MAX_META_BYTES} bytes`);
      }
      const text = body().toString('utf8');
      if (header.type === 'ExtendedHeader') pax = Pax.parse(text, pax, false);
      else if (header.type === 'NextFileHasLongPath' || header.type === 'OldGnuLongPath') {
        longPath = text.replace(/\0.*$/s, '');
      }
      // Global PAX headers and long link names carry nothing a bundle uses.
      continue;
    }
    pax = undefined;
    longPath = undefined;

    const kind = header.type === 'Directory' ? 'directory' : isRegularFile(header.type) ? 'file' : undefined;
    if (kind === undefined) {
      throw invalid(
        `entry ${name} is a ${describeType(header.type)}; a bundle may only hold regular files and directories`,
        rawPath,
      );
    }
    const path = normalizeBundlePath(rawPath, { directory: kind === 'directory' });
    if (path === '' && kind === 'directory') continue;
    if (path === '') throw invalid(`entry ${name} has no file name`, rawPath);
    count++;
    if (count > limits.maxFiles) {
      throw tooLarge(`the archive has more than ${limits.maxFiles} entries (at ${name})`, rawPath);
    }
    const previous = seen.get(path);
    if (previous !== undefined && !(previous === 'directory' && kind === 'directory')) {
      throw invalid(`entry ${name} appears more than once in the archive`, rawPath);
    }
    seen.set(path, kind);
    if (kind === 'directory') continue;
    if (size > maxEntryBytes) {
      throw tooLarge(`entry ${name} is ${size} bytes, over the ${maxEntryBytes}-byte limit`, rawPath);
    }
    total += size;
    if (total > limits.maxBytes) {
      throw tooLarge(
        `the archive holds more than ${limits.maxBytes} bytes of content (reached at ${name})`,
        rawPath,
      );
    }
    entries.push({ path, rawPath, bytes: body() });
  }
  if (offset + BLOCK > tar.length && offset < tar.length) {
    throw invalid('the archive ends in the middle of a block');
  }

  // A file and a directory of the same name, or a file used as a directory, cannot be laid out.
  for (const path of seen.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (seen.get(parent) === 'file') {
        throw invalid(
          `entry ${JSON.stringify(path)} lies under ${JSON.stringify(parent)}, which is a file`,
          path,
        );
      }
    }
  }
  return entries;
}

function isRegularFile(type: string): boolean {
  return type === 'File' || type === 'OldFile' || type === 'ContiguousFile';
}

function describeType(type: string): string {
  switch (type) {
    case 'SymbolicLink':
      return 'symbolic link';
    case 'Link':
      return 'hard link';
    case 'CharacterDevice':
      return 'character device';
    case 'BlockDevice':
      return 'block device';
    case 'FIFO':
      return 'FIFO';
    default:
      return `${type} entry`;
  }
}

function isZeroBlock(buf: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}
