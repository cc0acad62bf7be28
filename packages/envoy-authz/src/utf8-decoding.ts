// Bytes → string as Go renders them once OPA serializes a value: valid UTF-8 as is, each byte of an invalid sequence as one U+FFFD.

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * WHATWG's decoder (TextDecoder without `fatal`) folds a truncated multi-byte sequence into a
 * single U+FFFD; Go's utf8.DecodeRune rejects it one byte at a time, so `%E2%82` becomes two
 * replacement characters there. Valid input takes the fast path.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    return decodeLossy(bytes);
  }
}

/** Whether the bytes are valid UTF-8 (what a proto3 `string` field may carry). */
export function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function decodeLossy(b: Uint8Array): string {
  const out: number[] = [];
  let i = 0;
  while (i < b.length) {
    const width = runeWidth(b, i);
    if (width === 0) {
      out.push(0xfffd);
      i += 1;
      continue;
    }
    const b0 = b[i]!;
    let cp: number;
    if (width === 1) cp = b0;
    else if (width === 2) cp = ((b0 & 0x1f) << 6) | (b[i + 1]! & 0x3f);
    else if (width === 3) cp = ((b0 & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
    else
      cp = ((b0 & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
    out.push(cp);
    i += width;
  }
  let s = '';
  for (let k = 0; k < out.length; k += 8192) s += String.fromCodePoint(...out.slice(k, k + 8192));
  return s;
}

/** Width of the valid UTF-8 sequence at i, or 0 (Go's accept ranges: no overlongs, surrogates, > U+10FFFF). */
function runeWidth(b: Uint8Array, i: number): number {
  const b0 = b[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
