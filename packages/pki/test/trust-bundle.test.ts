// Trust bundles as PEM and as SPIFFE bundle JSON.
import crypto from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  parseSpiffeBundleDocument,
  parseTrustBundlePem,
  spiffeBundleDocument,
  trustBundlePem,
} from '../src/trust-bundle.ts';
import { issueLeaf, type TestAuthority, testAuthority, workloadId } from './fixtures.ts';

let ec: TestAuthority;
let rsa: TestAuthority;
beforeAll(async () => {
  [ec, rsa] = await Promise.all([
    testAuthority({ keyType: 'ec-p256' }),
    testAuthority({ keyType: 'rsa-2048' }),
  ]);
});

describe('PEM trust bundles', () => {
  it('concatenates roots and reads them back', () => {
    const text = trustBundlePem([ec.rootPem, rsa.rootPem]);
    expect(text.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(parseTrustBundlePem(`subject=ignored comment\n${text}`)).toEqual([ec.rootPem, rsa.rootPem]);
  });

  it.each([
    ['no certificate', () => 'nothing here'],
    ['a leaf certificate', () => issueLeaf(ec.issuer, workloadId('a', 'b')).certPem],
    ['a private key block', () => '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'],
    ['an oversized text', () => ec.rootPem.repeat(1000)],
  ])('refuses %s', (_name, text) => {
    expect(() => parseTrustBundlePem(text(), 64 * 1024)).toThrow(
      expect.objectContaining({ code: 'bundle_invalid' }),
    );
  });
});

describe('SPIFFE bundle JSON', () => {
  it('holds one x509-svid JWK per root, with x5c and the public key parameters', () => {
    const doc = spiffeBundleDocument([ec.rootPem, rsa.rootPem], { sequence: 7, refreshHintSeconds: 300 });
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
    expect(doc.keys).toHaveLength(2);
    const [ecKey, rsaKey] = doc.keys;
    expect(ecKey).toMatchObject({ use: 'x509-svid', kty: 'EC', crv: 'P-256' });
    expect(rsaKey).toMatchObject({ use: 'x509-svid', kty: 'RSA', e: 'AQAB' });
    expect(new crypto.X509Certificate(Buffer.from(ecKey?.x5c[0] ?? '', 'base64')).toString()).toBe(
      new crypto.X509Certificate(ec.rootPem).toString(),
    );
    // The JWK must be the certificate's own key.
    const jwkKey = crypto.createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: ecKey?.x, y: ecKey?.y },
      format: 'jwk',
    });
    expect(jwkKey.equals(new crypto.X509Certificate(ec.rootPem).publicKey)).toBe(true);
  });

  it('round-trips, skipping keys of other uses', () => {
    const doc = spiffeBundleDocument([ec.rootPem, rsa.rootPem], { sequence: 3 });
    const withJwt = {
      ...doc,
      keys: [...doc.keys, { use: 'jwt-svid', kty: 'EC', kid: 'k', crv: 'P-256', x: 'x', y: 'y' }],
    };
    expect(parseSpiffeBundleDocument(JSON.stringify(withJwt))).toEqual({
      rootsPem: [ec.rootPem, rsa.rootPem],
      sequence: 3,
      refreshHintSeconds: undefined,
    });
  });

  it.each<[string, (doc: ReturnType<typeof spiffeBundleDocument>) => unknown]>([
    ['not JSON', () => '{"keys": ['],
    ['no keys list', () => ({ spiffe_sequence: 1 })],
    [
      'an x5c with two certificates',
      (doc) => ({ keys: [{ ...doc.keys[0], x5c: [doc.keys[0]?.x5c[0], doc.keys[0]?.x5c[0]] }] }),
    ],
    ['a JWK that is not the certificate key', (doc) => ({ keys: [{ ...doc.keys[0], x: doc.keys[1]?.n }] })],
    [
      'a non-CA certificate',
      () => ({
        keys: [
          {
            use: 'x509-svid',
            kty: 'EC',
            x5c: [
              new crypto.X509Certificate(issueLeaf(ec.issuer, workloadId('a', 'b')).certPem).raw.toString(
                'base64',
              ),
            ],
          },
        ],
      }),
    ],
    ['a negative sequence', (doc) => ({ ...doc, spiffe_sequence: -1 })],
  ])('refuses %s', (_name, change) => {
    const doc = spiffeBundleDocument([ec.rootPem, rsa.rootPem]);
    expect(() => parseSpiffeBundleDocument(change(doc))).toThrow(
      expect.objectContaining({ code: 'bundle_invalid' }),
    );
  });
});
