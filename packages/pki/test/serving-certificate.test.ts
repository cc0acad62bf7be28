// The CA's own serving certificate: not an SVID, host names and IPs a TLS client can check, signed by the oldest held root.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueServingCertificate, pruneRetiredRoots, rotateRoot } from '../src/authority.ts';
import { readCertificate } from '../src/certificate-info.ts';
import { identityFromPeerCertificate } from '../src/peer-identity.ts';
import { isPkiError } from '../src/pki-error.ts';
import { ipAddressBytes } from '../src/x509-builder.ts';
import { SECRET, testAuthority } from './fixtures.ts';

const key = () => crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
const names = {
  uris: ['spiffe://cluster.local/ns/portcullis/sa/ca'],
  dnsNames: ['localhost', 'ca.portcullis.svc'],
  ipAddresses: ['127.0.0.1', '::1'],
};

describe('issueServingCertificate', () => {
  it('is a serverAuth certificate for the given names, which X509Certificate checks accept and workload checks refuse', async () => {
    const { state } = await testAuthority();
    const serving = await issueServingCertificate(state, {
      ...names,
      secret: SECRET,
      publicKey: key(),
      ttlSeconds: 3600,
    });
    const cert = readCertificate(serving.chainPem[0] ?? '', 'ca_certificate_invalid');
    expect(cert.x509.checkHost('localhost')).toBe('localhost');
    expect(cert.x509.checkHost('ca.portcullis.svc')).toBe('ca.portcullis.svc');
    expect(cert.x509.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.x509.checkIP('::1')).toBe('::1');
    expect(cert.x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.isCa).toBe(false);
    expect(serving.signedBy).toBe('root');
    let refused: unknown;
    try {
      identityFromPeerCertificate(cert.der);
    } catch (error) {
      refused = error;
    }
    expect(isPkiError(refused, 'peer_identity_invalid')).toBe(true);
  });

  it('is signed by the oldest root still trusted: the old one during the overlap, the new one after', async () => {
    const t0 = Date.now();
    const { state } = await testAuthority({ intermediate: true });
    const rotated = await rotateRoot(state, { secret: SECRET, overlapSeconds: 3600, now: t0 });
    const [oldRoot, newRoot] = rotated.roots.map((r) => readCertificate(r.certPem, 'ca_certificate_invalid'));
    const during = await issueServingCertificate(rotated, {
      ...names,
      secret: SECRET,
      publicKey: key(),
      ttlSeconds: 600,
      now: t0,
    });
    const leafDuring = readCertificate(during.chainPem[0] ?? '', 'ca_certificate_invalid');
    expect(leafDuring.x509.verify(oldRoot?.publicKey ?? key())).toBe(true);
    const later = t0 + 2 * 3600_000;
    const pruned = pruneRetiredRoots(rotated, later);
    const after = await issueServingCertificate(pruned, {
      ...names,
      secret: SECRET,
      publicKey: key(),
      ttlSeconds: 600,
      now: later,
    });
    const leafAfter = readCertificate(after.chainPem[0] ?? '', 'ca_certificate_invalid');
    expect(leafAfter.x509.verify(newRoot?.publicKey ?? key())).toBe(true);
    expect(after.chainPem.at(-1)).toBe(pruned.roots[0]?.certPem);
  });

  it.each([
    ['127.0.0.1', '7f000001'],
    ['::1', '00000000000000000000000000000001'],
    ['fe80::1:2', 'fe800000000000000000000000010002'],
    ['::ffff:10.1.2.3', '00000000000000000000ffff0a010203'],
    ['2001:db8::', '20010db8000000000000000000000000'],
  ])('encodes the IP address %s', (ip, hex) => {
    expect(ipAddressBytes(ip).toString('hex')).toBe(hex);
  });
});
