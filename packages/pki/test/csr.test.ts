// CSR validation against openssl-made requests: every accepted form and every rejected class.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Asn1Node, der, encode } from '../src/asn1.ts';
import { createCsr, validateCsr } from '../src/csr.ts';
import { createSigner, spkiDer } from '../src/key-algorithms.ts';
import { OID } from '../src/oids.ts';
import { decodePemBlocks, encodePem } from '../src/pem.ts';
import { keyPairSync, TRUST_DOMAIN, workloadId } from './fixtures.ts';
import { makeTempDir, openssl, opensslOk, removeDir } from './openssl.ts';

const ID = workloadId('default', 'web');
let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('csr');
});
afterAll(async () => {
  await removeDir(dir);
});

/** A CSR made by the openssl CLI: `newkey` as for `openssl req -newkey`, `san` as for `-addext subjectAltName=`. */
async function opensslCsr(
  name: string,
  newkey: string[],
  san: string | undefined,
  extra: string[] = [],
): Promise<string> {
  const out = path.join(dir, `${name}.csr`);
  const args = [
    'req',
    '-new',
    '-nodes',
    ...newkey,
    '-keyout',
    path.join(dir, `${name}.key`),
    '-subj',
    '/O=ignored',
    '-out',
    out,
  ];
  if (san !== undefined) args.push('-addext', `subjectAltName=${san}`);
  await opensslOk([...args, ...extra], dir);
  return fs.readFile(out, 'utf8');
}

/** A CSR with arbitrary GeneralNames, signed properly, for SANs openssl's config syntax cannot express. */
function rawCsr(privateKey: KeyObject, names: Asn1Node[]): string {
  const signer = createSigner(privateKey);
  if (signer === undefined) throw new Error('unsupported test key');
  const san = der.seq([der.oid(OID.subjectAltName), der.bool(true), der.octets(encode(der.seq(names)))]);
  const info = encode(
    der.seq([
      der.smallInt(0),
      der.seq([]),
      der.preEncoded(spkiDer(privateKey)),
      der.implicitConstructed(0, [der.seq([der.oid(OID.extensionRequest), der.set([der.seq([san])])])]),
    ]),
  );
  return encodePem(
    encode(
      der.seq([
        der.preEncoded(info),
        der.preEncoded(signer.algorithmIdentifierDer),
        der.bitString(signer.sign(info)),
      ]),
    ),
    'CERTIFICATE REQUEST',
  );
}

const uri = (value: string) => der.implicitPrimitive(6, value);
const derOf = (pem: string) => decodePemBlocks(pem)[0]?.der ?? Buffer.alloc(0);

describe('validateCsr accepts', () => {
  it.each([
    ['RSA-2048', ['-newkey', 'rsa:2048'], 'rsa-2048'],
    ['RSA-3072', ['-newkey', 'rsa:3072'], 'rsa-3072'],
    ['RSA-4096', ['-newkey', 'rsa:4096'], 'rsa-4096'],
    ['ECDSA P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'ec-p256'],
    [
      'ECDSA P-256 signed with SHA-384',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha384'],
      'ec-p256',
    ],
  ])('an openssl %s CSR', async (name, newkey, keyType) => {
    const pem = await opensslCsr(name.replace(/\W/g, ''), newkey, `URI:${ID}`);
    const csr = validateCsr(pem, { trustDomain: TRUST_DOMAIN });
    expect(csr.identity).toEqual({
      spiffeId: ID,
      trustDomain: TRUST_DOMAIN,
      namespace: 'default',
      serviceAccount: 'web',
    });
    expect(csr.keyType).toBe(keyType);
  });

  it.each([
    ['PEM text', (pem: string) => pem],
    ['PEM bytes', (pem: string) => Buffer.from(pem)],
    ['DER bytes', (pem: string) => derOf(pem)],
    ['DER as Uint8Array', (pem: string) => new Uint8Array(derOf(pem))],
    ['base64 DER text', (pem: string) => derOf(pem).toString('base64')],
    ['"NEW CERTIFICATE REQUEST" PEM', (pem: string) => encodePem(derOf(pem), 'NEW CERTIFICATE REQUEST')],
  ])('%s', (_name, transform) => {
    const pem = createCsr(keyPairSync('ec-p256').privateKey, ID);
    expect(validateCsr(transform(pem)).identity.spiffeId).toBe(ID);
  });

  it.each(['ec-p256', 'rsa-2048'] as const)('createCsr output (%s), which openssl verifies', async (type) => {
    const pem = createCsr(keyPairSync(type).privateKey, ID);
    await fs.writeFile(path.join(dir, `own-${type}.csr`), pem);
    const result = await openssl(['req', '-in', `own-${type}.csr`, '-verify', '-noout', '-text'], dir);
    expect(`${result.stdout}${result.stderr}`).toContain('verify OK');
    const text = result.stdout;
    expect(text).toMatch(
      /Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/,
    );
    expect(validateCsr(pem).keyType).toBe(type);
  });
});

describe('validateCsr rejects', () => {
  const p256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

  it.each([
    ['RSA-1024', ['-newkey', 'rsa:1024'], `URI:${ID}`, [], 'csr_weak_key'],
    ['RSA-2560 (an unusual size)', ['-newkey', 'rsa:2560'], `URI:${ID}`, [], 'csr_unsupported_key'],
    [
      'ECDSA P-384',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
      `URI:${ID}`,
      [],
      'csr_unsupported_key',
    ],
    [
      'ECDSA secp256k1',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
      `URI:${ID}`,
      [],
      'csr_unsupported_key',
    ],
    ['Ed25519', ['-newkey', 'ed25519'], `URI:${ID}`, [], 'csr_unsupported_key'],
    ['a SHA-1 signature', ['-newkey', 'rsa:2048'], `URI:${ID}`, ['-sha1'], 'csr_unsupported_signature'],
    [
      'an RSASSA-PSS signature',
      ['-newkey', 'rsa:2048'],
      `URI:${ID}`,
      ['-sigopt', 'rsa_padding_mode:pss'],
      'csr_unsupported_signature',
    ],
    ['no SAN', p256, undefined, [], 'csr_bad_san'],
    ['two URI SANs', p256, `URI:${ID},URI:${workloadId('default', 'other')}`, [], 'csr_bad_san'],
    ['a DNS SAN beside the URI', p256, `URI:${ID},DNS:web.default.svc`, [], 'csr_bad_san'],
    ['a DNS SAN only', p256, 'DNS:web.default.svc', [], 'csr_bad_san'],
    ['an IP SAN', p256, `URI:${ID},IP:10.0.0.1`, [], 'csr_bad_san'],
    ['an email SAN', p256, `URI:${ID},email:a@b.c`, [], 'csr_bad_san'],
    ['a non-SPIFFE URI', p256, 'URI:https://web.default.svc/', [], 'csr_bad_san'],
    ['a SPIFFE ID that is not /ns/<ns>/sa/<sa>', p256, 'URI:spiffe://cluster.local/web', [], 'csr_bad_san'],
    [
      'a SPIFFE ID of another trust domain',
      p256,
      'URI:spiffe://evil.example/ns/default/sa/web',
      [],
      'csr_bad_san',
    ],
  ])('%s', async (name, newkey, san, extra, code) => {
    const pem = await opensslCsr(`bad-${name.replace(/\W/g, '')}`, newkey, san, extra);
    expect(() => validateCsr(pem, { trustDomain: TRUST_DOMAIN })).toThrow(expect.objectContaining({ code }));
  });

  it.each([
    ['an uppercase trust domain', 'spiffe://Cluster.local/ns/a/sa/b'],
    ['a query', 'spiffe://cluster.local/ns/a/sa/b?x=1'],
    ['a fragment', 'spiffe://cluster.local/ns/a/sa/b#f'],
    ['a dot segment', 'spiffe://cluster.local/ns/../sa/b'],
    ['an empty segment', 'spiffe://cluster.local/ns//sa/b'],
    ['an over-long ID', `spiffe://cluster.local/ns/a/sa/${'b'.repeat(2100)}`],
  ])('a SPIFFE ID with %s', (_name, id) => {
    const pem = rawCsr(keyPairSync('ec-p256').privateKey, [uri(id)]);
    expect(() => validateCsr(pem)).toThrow(expect.objectContaining({ code: 'csr_bad_san' }));
  });

  it('a SAN of another GeneralName kind (registeredID)', () => {
    const pem = rawCsr(keyPairSync('ec-p256').privateKey, [uri(ID), der.implicitPrimitive(8, '\x2a\x03')]);
    expect(() => validateCsr(pem)).toThrow(expect.objectContaining({ code: 'csr_bad_san' }));
  });

  it.each([
    ['plain text', 'hello, I am a CSR'],
    ['empty text', ''],
    ['a certificate PEM', encodePem(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'CERTIFICATE')],
    [
      'two CSR PEM blocks',
      `${createCsr(keyPairSync('ec-p256').privateKey, ID)}${createCsr(keyPairSync('ec-p256').privateKey, ID)}`,
    ],
    [
      'a PEM block with broken base64',
      '-----BEGIN CERTIFICATE REQUEST-----\nnot*base64\n-----END CERTIFICATE REQUEST-----\n',
    ],
    ['an unterminated PEM block', '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n'],
    ['truncated DER', derOf(createCsr(keyPairSync('ec-p256').privateKey, ID)).subarray(0, 100)],
    [
      'DER with trailing bytes',
      Buffer.concat([derOf(createCsr(keyPairSync('ec-p256').privateKey, ID)), Buffer.of(0)]),
    ],
    ['a DER SEQUENCE of the wrong shape', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])],
    ['random bytes', crypto.randomBytes(200)],
  ])('%s as csr_malformed', (_name, input) => {
    expect(() => validateCsr(input)).toThrow(expect.objectContaining({ code: 'csr_malformed' }));
  });

  it.each([
    ['signature', (bytes: Buffer) => bytes.length - 5],
    ['signed SAN', (bytes: Buffer) => bytes.indexOf(Buffer.from('sa/web')) + 3],
  ])('a tampered %s as csr_bad_signature', (_name, offset) => {
    for (const type of ['ec-p256', 'rsa-2048'] as const) {
      const bytes = Buffer.from(derOf(createCsr(keyPairSync(type).privateKey, ID)));
      const at = offset(bytes);
      bytes[at] = (bytes[at] ?? 0) ^ 0x01;
      expect(() => validateCsr(bytes)).toThrow(expect.objectContaining({ code: 'csr_bad_signature' }));
    }
  });

  it('an input above the size limit, before parsing it', () => {
    const pem = createCsr(keyPairSync('ec-p256').privateKey, ID);
    expect(() => validateCsr(pem, { maxBytes: 100 })).toThrow(
      expect.objectContaining({ code: 'csr_too_large' }),
    );
    expect(() => validateCsr('A'.repeat(64 * 1024 + 1))).toThrow(
      expect.objectContaining({ code: 'csr_too_large' }),
    );
    expect(() => validateCsr(Buffer.alloc(64 * 1024 + 1, 0x30))).toThrow(
      expect.objectContaining({ code: 'csr_too_large' }),
    );
  });

  it('never echoes the input in its messages', async () => {
    const pem = await opensslCsr('echo', ['-newkey', 'rsa:1024'], `URI:${ID}`);
    try {
      validateCsr(pem);
      expect.unreachable();
    } catch (error) {
      expect(String(error)).not.toContain(pem.slice(40, 80));
    }
  });

  it('openssl agrees the tampered CSR is bad', async () => {
    const bytes = Buffer.from(derOf(createCsr(keyPairSync('ec-p256').privateKey, ID)));
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] ?? 0) ^ 0x01;
    await fs.writeFile(path.join(dir, 'tampered.der'), bytes);
    const result = await openssl(['req', '-in', 'tampered.der', '-inform', 'DER', '-verify', '-noout'], dir);
    // OpenSSL 3.0 exits 0 here and only reports the failure in text.
    expect(`${result.stdout}${result.stderr}`).toContain('verify failure');
  });
});
