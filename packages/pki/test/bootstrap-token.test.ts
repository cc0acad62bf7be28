// Bootstrap tokens: minting, verification and every refusal class.
import { type CryptoKey, exportJWK, generateKeyPair, type JSONWebKeySet, SignJWT, UnsecuredJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createDevelopmentTokenIssuer,
  createTokenVerifier,
  type DevelopmentTokenIssuer,
  mintBootstrapToken,
  verifyBootstrapToken,
} from '../src/bootstrap-token.ts';

const AUDIENCE = 'portcullis-ca';
const NOW = Date.UTC(2030, 0, 1);
const HOUR = 3600 * 1000;
let dev: DevelopmentTokenIssuer;
let stranger: DevelopmentTokenIssuer;

beforeAll(async () => {
  [dev, stranger] = await Promise.all([
    createDevelopmentTokenIssuer(),
    createDevelopmentTokenIssuer({ issuer: 'https://other.example' }),
  ]);
});

const verify = (token: string, overrides: Partial<Parameters<typeof verifyBootstrapToken>[1]> = {}) =>
  verifyBootstrapToken(token, {
    issuer: dev.issuer,
    audience: AUDIENCE,
    keys: dev.jwks,
    now: () => NOW,
    ...overrides,
  });

/** Signs arbitrary claims with a separate key, for shapes `mint` does not produce. */
async function customToken(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'custom' })
    .setIssuer(dev.issuer)
    .setAudience(AUDIENCE)
    .setExpirationTime(Math.floor((NOW + HOUR) / 1000))
    .sign(custom.privateKey);
}
let custom: { privateKey: CryptoKey; jwks: JSONWebKeySet };
beforeAll(async () => {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  custom = { privateKey, jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'custom' }] } };
});

describe('bootstrap tokens', () => {
  it('mints a Kubernetes-shaped token and verifies it', async () => {
    const token = await dev.mint({ namespace: 'shop', serviceAccount: 'cart', audience: AUDIENCE, now: NOW });
    await expect(verify(token)).resolves.toEqual({ namespace: 'shop', serviceAccount: 'cart' });
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    expect(payload).toMatchObject({
      iss: dev.issuer,
      sub: 'system:serviceaccount:shop:cart',
      aud: AUDIENCE,
      'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'cart' } },
    });
  });

  it.each([
    ['only a service-account subject', { sub: 'system:serviceaccount:shop:cart' }, 'cart'],
    [
      'only the kubernetes.io claim',
      {
        'kubernetes.io': {
          namespace: 'shop',
          serviceaccount: { name: 'cart', uid: 'u' },
          pod: { name: 'p' },
        },
      },
      'cart',
    ],
    ['a dotted service account name', { sub: 'system:serviceaccount:shop:cart.v2' }, 'cart.v2'],
  ])('accepts %s', async (_name, claims, serviceAccount) => {
    const token = await customToken(claims);
    await expect(verify(token, { keys: custom.jwks })).resolves.toEqual({
      namespace: 'shop',
      serviceAccount,
    });
  });

  // The last column says whose keys the verifier holds: a wrong-issuer token must fail on `iss`, not on its key.
  it.each<[string, () => Promise<string>, string, 'dev' | 'stranger']>([
    [
      'an expired token',
      () => dev.mint({ namespace: 'a', serviceAccount: 'b', audience: AUDIENCE, now: NOW - 2 * HOUR }),
      'token_expired',
      'dev',
    ],
    [
      'a token from the future',
      () => dev.mint({ namespace: 'a', serviceAccount: 'b', audience: AUDIENCE, now: NOW + HOUR }),
      'token_not_yet_valid',
      'dev',
    ],
    [
      'another issuer',
      () => stranger.mint({ namespace: 'a', serviceAccount: 'b', audience: AUDIENCE, now: NOW }),
      'token_wrong_issuer',
      'stranger',
    ],
    [
      'another audience',
      () => dev.mint({ namespace: 'a', serviceAccount: 'b', audience: 'kube-apiserver', now: NOW }),
      'token_wrong_audience',
      'dev',
    ],
    [
      'a signature by another key',
      () => stranger.mint({ namespace: 'a', serviceAccount: 'b', audience: AUDIENCE, now: NOW }),
      'token_invalid',
      'dev',
    ],
    ['a garbled token', async () => 'not.a.jwt', 'token_invalid', 'dev'],
    [
      'an unsigned (alg none) token',
      async () => new UnsecuredJWT({ sub: 'system:serviceaccount:a:b' }).setIssuer('x').encode(),
      'token_invalid',
      'dev',
    ],
    ['an oversized token', async () => 'a'.repeat(20_000), 'token_too_large', 'dev'],
  ])('refuses %s', async (_name, token, code, keysOf) => {
    await expect(
      verify(await token(), { keys: (keysOf === 'dev' ? dev : stranger).jwks }),
    ).rejects.toMatchObject({ code });
  });

  it.each([
    ['no workload claims', { sub: 'alice' }],
    [
      'a subject and kubernetes.io that disagree',
      {
        sub: 'system:serviceaccount:shop:cart',
        'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'admin' } },
      },
    ],
    ['kubernetes.io without a service account', { 'kubernetes.io': { namespace: 'shop' } }],
    ['a namespace that is not a Kubernetes name', { sub: 'system:serviceaccount:Shop_1:cart' }],
    [
      'a service account with a slash',
      { 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'a/b' } } },
    ],
  ])('refuses %s as token_bad_claims', async (_name, claims) => {
    await expect(verify(await customToken(claims), { keys: custom.jwks })).rejects.toMatchObject({
      code: 'token_bad_claims',
    });
  });

  it('tolerates clock skew within the configured window', async () => {
    const token = await dev.mint({
      namespace: 'a',
      serviceAccount: 'b',
      audience: AUDIENCE,
      now: NOW - HOUR - 30_000,
    });
    await expect(verify(token)).resolves.toEqual({ namespace: 'a', serviceAccount: 'b' });
    await expect(verify(token, { clockToleranceSeconds: 10 })).rejects.toMatchObject({
      code: 'token_expired',
    });
  });

  it('requires an expiry', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const token = await new SignJWT({ sub: 'system:serviceaccount:a:b' })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(dev.issuer)
      .setAudience(AUDIENCE)
      .sign(privateKey);
    await expect(verify(token, { keys: { keys: [await exportJWK(publicKey)] } })).rejects.toMatchObject({
      code: 'token_bad_claims',
    });
  });

  it('reuses one verifier and accepts a key resolver', async () => {
    const verifier = createTokenVerifier({
      issuer: dev.issuer,
      audience: [AUDIENCE, 'other'],
      keys: dev.jwks,
      now: () => NOW,
    });
    const token = await dev.mint({ namespace: 'a', serviceAccount: 'b', audience: AUDIENCE, now: NOW });
    await expect(verifier(token)).resolves.toEqual({ namespace: 'a', serviceAccount: 'b' });
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const byResolver = createTokenVerifier({
      issuer: 'https://k8s',
      audience: AUDIENCE,
      keys: async () => publicKey,
      now: () => NOW,
    });
    const signed = await mintBootstrapToken(privateKey, {
      issuer: 'https://k8s',
      namespace: 'c',
      serviceAccount: 'd',
      audience: AUDIENCE,
      now: NOW,
    });
    await expect(byResolver(signed)).resolves.toEqual({ namespace: 'c', serviceAccount: 'd' });
  });

  it('remembers verified tokens until exp or the cache age, whichever is sooner, and at most `entries`', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    let resolutions = 0;
    let now = NOW;
    const verifier = createTokenVerifier({
      issuer: 'https://k8s',
      audience: AUDIENCE,
      keys: async () => {
        resolutions++;
        return publicKey;
      },
      now: () => now,
      clockToleranceSeconds: 0,
      cache: { entries: 2, maxAgeSeconds: 60 },
    });
    const mint = (serviceAccount: string, ttlSeconds = 3600) =>
      mintBootstrapToken(privateKey, {
        issuer: 'https://k8s',
        namespace: 'ns',
        serviceAccount,
        audience: AUDIENCE,
        now: NOW,
        ttlSeconds,
      });
    const [a, b, c, short] = await Promise.all([mint('a'), mint('b'), mint('c'), mint('short', 30)]);
    await expect(verifier(a)).resolves.toEqual({ namespace: 'ns', serviceAccount: 'a' });
    await expect(verifier(a)).resolves.toEqual({ namespace: 'ns', serviceAccount: 'a' });
    expect(resolutions).toBe(1);
    now = NOW + 61_000;
    await verifier(a);
    expect(resolutions).toBe(2);
    // Full at two: b and c push a out.
    await verifier(b);
    await verifier(c);
    await verifier(a);
    expect(resolutions).toBe(5);
    now = NOW;
    await verifier(short);
    now = NOW + 31_000;
    await expect(verifier(short)).rejects.toMatchObject({ code: 'token_expired' });
  });
});
