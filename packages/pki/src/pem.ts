// PEM armour (RFC 7468): encoding DER, and reading the blocks of a PEM text strictly.

export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function encodePem(der: Uint8Array, label: string): string {
  const base64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  // Slicing beats a /.{64}/g replace by a few microseconds, which shows in per-issuance cost.
  let body = '';
  for (let at = 0; at < base64.length; at += 64) body += `${base64.slice(at, at + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/**
 * Every PEM block in `text`; text between blocks (OpenSSL's "subject=" comments) is ignored,
 * but a block whose body is not base64 is an error, so a corrupted file is not read as shorter.
 */
export function decodePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const body = (match[2] ?? '').replace(/\s+/g, '');
    if (!BASE64.test(body) || body.length % 4 !== 0) {
      throw new Error(`the ${match[1]} PEM block is not valid base64`);
    }
    blocks.push({ label: match[1] ?? '', der: Buffer.from(body, 'base64') });
  }
  const begins = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks.length) throw new Error('a PEM block is not terminated by its matching END line');
  return blocks;
}

/** The DER of every CERTIFICATE block, in order; any other block is an error. */
export function decodePemCertificates(text: string): Buffer[] {
  return decodePemBlocks(text).map((block) => {
    if (block.label !== 'CERTIFICATE') throw new Error(`expected CERTIFICATE blocks, found ${block.label}`);
    return block.der;
  });
}
