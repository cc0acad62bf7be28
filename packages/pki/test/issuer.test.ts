// Issued X.509-SVIDs checked field by field with openssl verify and openssl x509 -text.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCsr } from '../src/csr.ts';
import { BACKDATE_SECONDS, Issuer } from '../src/issuer.ts';
import type { KeyType } from '../src/key-algorithms.ts';
import { decryptPrivateKey } from '../src/key-encryption.ts';
import {
  issueLeaf,
  keyPairSync,
  SECRET,
  type TestAuthority,
  TRUST_DOMAIN,
  testAuthority,
  workloadId,
} from './fixtures.ts';
import { makeTempDir, openssl, opensslOk, removeDir, writeFiles } from './openssl.ts';

const ID = workloadId('shop', 'cart');
// Whole seconds, so the expected validity is exact; near real time, so openssl verify accepts it.
const NOW = Math.floor(Date.now() / 1000) * 1000;
let dir: string;
const authorities = new Map<string, TestAuthority>();

async function authority(caKey: KeyType, intermediate: boolean): Promise<TestAuthority> {
  const name = `${caKey}-${intermediate}`;
  let found = authorities.get(name);
  if (found === undefined) {
    found = await testAuthority({ keyType: caKey, intermediate, now: NOW });
    authorities.set(name, found);
  }
  return found;
}

beforeAll(async () => {
  dir = await makeTempDir('issuer');
});
afterAll(async () => {
  await removeDir(dir);
});

function opensslDate(text: string, field: string): number {
  const match = new RegExp(`${field}=(.+)`).exec(text);
  return Date.parse(match?.[1] ?? '');
}

describe('issued X.509-SVIDs, as openssl sees them', () => {
  it.each([
    ['ec-p256', false, 'ec-p256'],
    ['ec-p256', false, 'rsa-2048'],
    ['ec-p256', true, 'ec-p256'],
    ['ec-p256', true, 'rsa-2048'],
    ['rsa-2048', false, 'ec-p256'],
    ['rsa-2048', false, 'rsa-2048'],
    ['rsa-2048', true, 'ec-p256'],
    ['rsa-3072', true, 'rsa-3072'],
  ] as const)('CA %s (intermediate: %s) signing a %s leaf', async (caKey, intermediate, leafKey) => {
    const ca = await authority(caKey, intermediate);
    const ttlSeconds = 3600;
    const issued = issueLeaf(ca.issuer, ID, leafKey, ttlSeconds);
    const name = `${caKey}-${intermediate}-${leafKey}`;
    expect(issued.chainPem).toHaveLength(intermediate ? 3 : 2);
    expect(issued.chainPem[0]).toBe(issued.certPem);
    expect(issued.chainPem.at(-1)).toBe(ca.rootPem);
    await writeFiles(dir, {
      [`${name}-leaf.pem`]: issued.certPem,
      [`${name}-root.pem`]: ca.rootPem,
      [`${name}-untrusted.pem`]: issued.chainPem.slice(1, -1).join(''),
    });
    const untrusted = intermediate ? ['-untrusted', `${name}-untrusted.pem`] : [];
    for (const purpose of ['sslclient', 'sslserver']) {
      const verify = await opensslOk(
        [
          'verify',
          '-x509_strict',
          '-purpose',
          purpose,
          '-CAfile',
          `${name}-root.pem`,
          ...untrusted,
          `${name}-leaf.pem`,
        ],
        dir,
      );
      expect(verify.trim()).toBe(`${name}-leaf.pem: OK`);
    }

    const text = await opensslOk(['x509', '-in', `${name}-leaf.pem`, '-text', '-noout'], dir);
    expect(text).toMatch(/Version: 3 \(0x2\)/);
    expect(text).toMatch(/Subject: *\n/);
    expect(text).toMatch(
      /X509v3 Subject Alternative Name: critical\n\s+URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart\n/,
    );
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    const usages = leafKey.startsWith('rsa') ? 'Digital Signature, Key Encipherment' : 'Digital Signature';
    expect(text).toMatch(new RegExp(`X509v3 Key Usage: critical\\n\\s+${usages}\\n`));
    expect(text).not.toMatch(/Certificate Sign|CRL Sign/);
    expect(text).toMatch(
      /X509v3 Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication\n/,
    );
    const ski = /X509v3 Subject Key Identifier: *\n\s+([0-9A-F:]+)/.exec(text)?.[1];
    const aki = /X509v3 Authority Key Identifier: *\n\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    expect(ski).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    const caText = await opensslOk(
      ['x509', '-in', `${name}-${intermediate ? 'untrusted' : 'root'}.pem`, '-text', '-noout'],
      dir,
    );
    expect(aki).toBe(/X509v3 Subject Key Identifier: *\n\s+([0-9A-F:]+)/.exec(caText)?.[1]);
    // Exactly the six extensions above, nothing else.
    expect(text.match(/X509v3 (?!extensions)/g)).toHaveLength(6);

    const fields = await opensslOk(
      ['x509', '-in', `${name}-leaf.pem`, '-noout', '-serial', '-startdate', '-enddate'],
      dir,
    );
    const serial = /serial=([0-9A-F]+)/.exec(fields)?.[1] ?? '';
    expect(serial).toHaveLength(32);
    expect(Number.parseInt(serial[0] ?? '0', 16)).toBeGreaterThanOrEqual(8);
    expect(serial).toBe(issued.serial);
    expect(opensslDate(fields, 'notBefore')).toBe(NOW - BACKDATE_SECONDS * 1000);
    expect(opensslDate(fields, 'notAfter')).toBe(NOW + ttlSeconds * 1000);
    expect(issued.notAfter.getTime()).toBe(NOW + ttlSeconds * 1000);

    const x509 = new crypto.X509Certificate(issued.certPem);
    expect(x509.subjectAltName).toBe(`URI:${ID}`);
    expect(x509.ca).toBe(false);
    expect(x509.checkPrivateKey(issued.privateKey)).toBe(true);
  });

  it('issues from DER CSR bytes with the default TTL of 24 h', async () => {
    const ca = await authority('ec-p256', false);
    const pem = createCsr(keyPairSync('ec-p256').privateKey, ID);
    const derBytes = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const issued = ca.issuer.issue({ csr: derBytes });
    expect(issued.notAfter.getTime() - NOW).toBe(24 * 3600 * 1000);
    expect(issued.spiffeId).toBe(ID);
  });

  it('serials are distinct', async () => {
    const ca = await authority('ec-p256', false);
    const { publicKey } = keyPairSync('ec-p256');
    const serials = new Set(
      Array.from({ length: 300 }, () => ca.issuer.issueForPublicKey(publicKey, ID).serial),
    );
    expect(serials.size).toBe(300);
  });
});

describe('issuance policy', () => {
  it.each([
    ['a TTL above the maximum', { ttlSeconds: 90 * 24 * 3600 + 1 }, 'ttl_too_long'],
    ['a zero TTL', { ttlSeconds: 0 }, 'ttl_invalid'],
    ['a fractional TTL', { ttlSeconds: 1.5 }, 'ttl_invalid'],
    [
      'a caller in another namespace',
      { caller: { namespace: 'other', serviceAccount: 'cart' } },
      'identity_mismatch',
    ],
    [
      'a caller with another service account',
      { caller: { namespace: 'shop', serviceAccount: 'other' } },
      'identity_mismatch',
    ],
  ])('refuses %s', async (_name, request, code) => {
    const ca = await authority('ec-p256', false);
    const csr = createCsr(keyPairSync('ec-p256').privateKey, ID);
    expect(() => ca.issuer.issue({ csr, ...request })).toThrow(expect.objectContaining({ code }));
  });

  it('accepts the matching caller and a TTL at the configured maximum', async () => {
    const ca = await authority('ec-p256', false);
    const issuer = new Issuer({
      caChainPem: ca.issuer.caChainPem,
      signingKey: await decryptPrivateKey(ca.state.active.encryptedKey, SECRET),
      trustDomain: TRUST_DOMAIN,
      maxTtlSeconds: 7200,
      now: () => NOW,
    });
    const csr = createCsr(keyPairSync('ec-p256').privateKey, ID);
    expect(
      issuer.issue({ csr, ttlSeconds: 7200, caller: { namespace: 'shop', serviceAccount: 'cart' } }).spiffeId,
    ).toBe(ID);
    expect(() => issuer.issue({ csr, ttlSeconds: 7201 })).toThrow(
      expect.objectContaining({ code: 'ttl_too_long' }),
    );
  });

  it('caps a leaf at the expiry of its CA', async () => {
    const ca = await testAuthority({ rootTtlSeconds: 3600, now: NOW });
    const issued = issueLeaf(ca.issuer, ID, 'ec-p256', 86_400);
    expect(issued.notAfter.getTime()).toBe(NOW + 3600 * 1000);
  });

  it('refuses to sign once its CA expired', async () => {
    const ca = await testAuthority({ rootTtlSeconds: 3600, now: NOW });
    let now = NOW + 1000;
    const late = new Issuer({
      caChainPem: ca.issuer.caChainPem,
      signingKey: await decryptPrivateKey(ca.state.active.encryptedKey, SECRET),
      trustDomain: TRUST_DOMAIN,
      now: () => now,
    });
    now = NOW + 3601 * 1000;
    expect(() => issueLeaf(late, ID)).toThrow(expect.objectContaining({ code: 'ca_certificate_invalid' }));
  });

  it('refuses a leaf, a foreign key or a broken chain as its CA', async () => {
    const ca = await authority('ec-p256', true);
    const signingKey = await decryptPrivateKey(ca.state.active.encryptedKey, SECRET);
    const leaf = issueLeaf(ca.issuer, ID);
    const base = { trustDomain: TRUST_DOMAIN, signingKey };
    expect(() => new Issuer({ ...base, caChainPem: leaf.chainPem })).toThrow(
      expect.objectContaining({ code: 'ca_certificate_invalid' }),
    );
    expect(
      () =>
        new Issuer({
          ...base,
          caChainPem: ca.issuer.caChainPem,
          signingKey: keyPairSync('ec-p256').privateKey,
        }),
    ).toThrow(expect.objectContaining({ code: 'ca_key_invalid' }));
    const other = await authority('rsa-2048', false);
    expect(() => new Issuer({ ...base, caChainPem: [ca.issuer.caChainPem[0] ?? '', other.rootPem] })).toThrow(
      expect.objectContaining({ code: 'ca_chain_invalid' }),
    );
    expect(() => new Issuer({ ...base, caChainPem: [ca.issuer.caChainPem[0] ?? ''] })).toThrow(
      expect.objectContaining({ code: 'ca_chain_invalid' }),
    );
  });
});

describe('name constraints', () => {
  it('let openssl accept our trust domain and refuse another', async () => {
    const ca = await testAuthority({ nameConstraints: true, intermediate: true, now: NOW });
    const signingKey = await decryptPrivateKey(ca.state.active.encryptedKey, SECRET);
    // An issuer that ignores the trust domain, as a compromised intermediate would.
    const rogue = new Issuer({ caChainPem: ca.issuer.caChainPem, signingKey, trustDomain: 'evil.example' });
    const good = issueLeaf(ca.issuer, ID);
    const bad = issueLeaf(rogue, workloadId('shop', 'cart', 'evil.example'));
    await writeFiles(dir, {
      'nc-root.pem': ca.rootPem,
      'nc-int.pem': ca.issuer.caChainPem[0] ?? '',
      'nc-good.pem': good.certPem,
      'nc-bad.pem': bad.certPem,
    });
    const rootText = await opensslOk(['x509', '-in', 'nc-root.pem', '-noout', '-text'], dir);
    expect(rootText).toMatch(/X509v3 Name Constraints: critical\n\s+Permitted:\n\s+URI:cluster\.local/);
    expect(
      (
        await opensslOk(['verify', '-CAfile', 'nc-root.pem', '-untrusted', 'nc-int.pem', 'nc-good.pem'], dir)
      ).trim(),
    ).toBe('nc-good.pem: OK');
    const refused = await openssl(
      ['verify', '-CAfile', 'nc-root.pem', '-untrusted', 'nc-int.pem', 'nc-bad.pem'],
      dir,
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/permitted subtree violation/);
    await fs.rm(path.join(dir, 'nc-bad.pem'));
  });
});
