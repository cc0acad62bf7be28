// The caller authenticator on its own: a renewing client certificate is read once per certificate, and refused once expired.
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { createAuthority, generateKeyPair, openAuthority } from '@portcullis/pki';
import { describe, expect, it } from 'vitest';
import { CallerAuthenticator, Refusal } from '../src/caller-auth.ts';

const SECRET = 'caller-auth-test-secret-0123456789';

async function issued(serviceAccount: string): Promise<{ peer: PeerCertificate; notAfter: number }> {
  const state = await createAuthority({ trustDomain: 'cluster.local', secret: SECRET });
  const { issuer } = await openAuthority(state, { secret: SECRET });
  const { publicKey } = await generateKeyPair('ec-p256');
  const cert = issuer.issueForPublicKey(
    publicKey,
    `spiffe://cluster.local/ns/shop/sa/${serviceAccount}`,
    3600,
  );
  const x509 = new X509Certificate(cert.certPem);
  // The fields node:tls fills for a verified peer that the authenticator reads.
  const peer = {
    raw: x509.raw,
    fingerprint256: x509.fingerprint256,
    valid_to: x509.validTo,
  } as PeerCertificate;
  return { peer, notAfter: cert.notAfter.getTime() };
}

describe('CallerAuthenticator with client certificates', () => {
  it('names the certificate’s workload, and refuses it once expired even on a connection opened before', async () => {
    const { peer, notAfter } = await issued('cart');
    let now = notAfter - 60_000;
    const auth = new CallerAuthenticator('cluster.local', undefined, () => now);
    await expect(auth.authenticate({ peerCertificate: peer })).resolves.toEqual({
      method: 'mtls',
      namespace: 'shop',
      serviceAccount: 'cart',
      label: 'mtls:spiffe://cluster.local/ns/shop/sa/cart',
    });
    now = notAfter;
    const refusal = await auth.authenticate({ peerCertificate: peer }).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(Refusal);
    expect(refusal).toMatchObject({ reason: 'peer_unauthenticated', error: { code: 'unauthenticated' } });
  });

  it('keeps certificates apart by fingerprint', async () => {
    const [cart, web] = await Promise.all([issued('cart'), issued('web')]);
    const auth = new CallerAuthenticator('cluster.local', undefined);
    for (let i = 0; i < 2; i++) {
      await expect(auth.authenticate({ peerCertificate: cart.peer })).resolves.toMatchObject({
        serviceAccount: 'cart',
      });
      await expect(auth.authenticate({ peerCertificate: web.peer })).resolves.toMatchObject({
        serviceAccount: 'web',
      });
    }
  });

  it('refuses a certificate of another trust domain every time, not only the first', async () => {
    const { peer } = await issued('cart');
    const auth = new CallerAuthenticator('other.domain', undefined);
    for (let i = 0; i < 2; i++) {
      await expect(auth.authenticate({ peerCertificate: peer })).rejects.toMatchObject({
        reason: 'peer_identity_invalid',
      });
    }
  });
});
