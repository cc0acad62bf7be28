// Reading the SPIFFE ID of a peer certificate in each input form, and the refusals.
import crypto from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { identityFromPeerCertificate, type PeerIdentityOptions } from '../src/peer-identity.ts';
import { issueLeaf, type TestAuthority, TRUST_DOMAIN, testAuthority, workloadId } from './fixtures.ts';

const ID = workloadId('shop', 'cart');
let ca: TestAuthority;
let other: TestAuthority;
let leafPem: string;

beforeAll(async () => {
  [ca, other] = await Promise.all([
    testAuthority({ intermediate: true }),
    testAuthority({ trustDomain: 'other.example' }),
  ]);
  leafPem = issueLeaf(ca.issuer, ID).certPem;
});

describe('identityFromPeerCertificate', () => {
  const expected = { spiffeId: ID, trustDomain: TRUST_DOMAIN, namespace: 'shop', serviceAccount: 'cart' };

  it.each<[string, () => Parameters<typeof identityFromPeerCertificate>[0]]>([
    ['PEM', () => leafPem],
    ['an X509Certificate', () => new crypto.X509Certificate(leafPem)],
    ['DER bytes', () => new crypto.X509Certificate(leafPem).raw],
    ['a tls PeerCertificate', () => ({ raw: new crypto.X509Certificate(leafPem).raw }) as PeerCertificate],
  ])('reads the SPIFFE ID from %s', (_name, input) => {
    expect(identityFromPeerCertificate(input(), { trustDomain: TRUST_DOMAIN })).toEqual(expected);
  });

  it('checks the direct issuer and validity when asked to', () => {
    const issuersPem = [ca.issuer.caChainPem[0] ?? ''];
    expect(identityFromPeerCertificate(leafPem, { issuersPem })).toEqual(expected);
    expect(() => identityFromPeerCertificate(leafPem, { issuersPem: other.bundlePem })).toThrow(
      expect.objectContaining({ code: 'peer_unauthenticated' }),
    );
    expect(() =>
      identityFromPeerCertificate(leafPem, { issuersPem, now: () => Date.now() + 2 * 86_400_000 }),
    ).toThrow(expect.objectContaining({ code: 'peer_unauthenticated' }));
  });

  it.each<[string, () => Parameters<typeof identityFromPeerCertificate>[0], PeerIdentityOptions, string]>([
    ['no certificate (node:tls gives {})', () => ({}) as PeerCertificate, {}, 'peer_unauthenticated'],
    ['a CA certificate', () => ca.rootPem, {}, 'peer_identity_invalid'],
    [
      'another trust domain',
      () => issueLeaf(other.issuer, workloadId('shop', 'cart', 'other.example')).certPem,
      { trustDomain: TRUST_DOMAIN },
      'peer_identity_invalid',
    ],
    ['garbage', () => Buffer.from('not a certificate'), {}, 'peer_identity_invalid'],
  ])('refuses %s', (_name, input, options, code) => {
    expect(() => identityFromPeerCertificate(input(), options)).toThrow(expect.objectContaining({ code }));
  });
});
