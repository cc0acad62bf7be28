// Issuance over real gRPC (TLS, token auth): openssl verifies every certificate and every extension; records land in Postgres.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCertificate } from '@portcullis/pki';
import type { TestDatabase } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  csrFor,
  type RunningCa,
  run,
  type Shared,
  shared,
  startCa,
  workloadId,
} from './ca-fixture.ts';

let s: Shared;
const dbs: TestDatabase[] = [];
const cas: Record<'ec' | 'rsaIntermediate', RunningCa> = {} as Record<'ec' | 'rsaIntermediate', RunningCa>;

beforeAll(async () => {
  s = await shared();
  const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dbs.push(a, b);
  [cas.ec, cas.rsaIntermediate] = await Promise.all([
    startCa(a, s),
    startCa(b, s, { CA_SIGNING_KEY_TYPE: 'rsa-2048', CA_INTERMEDIATE: 'true' }),
  ]);
});

afterAll(async () => {
  await Promise.all(Object.values(cas).map((ca) => ca.close()));
  await Promise.all(dbs.map((db) => db.drop()));
  await s.cleanup();
});

async function openssl(args: string[]): Promise<string> {
  const result = await run('openssl', args, s.dir);
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

describe('CreateCertificate with a bootstrap token', () => {
  it.each([
    ['ec', 'ec-p256', 2],
    ['ec', 'rsa-2048', 2],
    ['ec', 'rsa-3072', 2],
    ['rsaIntermediate', 'ec-p256', 3],
    ['rsaIntermediate', 'rsa-2048', 3],
  ] as const)(
    'CA %s signs a %s CSR: chain of %i that openssl verifies, with every SVID extension',
    async (caName, keyType, chainLength) => {
      const ca = cas[caName];
      const name = `${caName.toLowerCase()}-${keyType}`;
      const spiffeId = workloadId('default', name);
      const { csr } = csrFor(spiffeId, keyType);
      const before = Date.now();
      const chain = await ca.tokenClient('default', name).createCertificate(csr);
      expect(chain).toHaveLength(chainLength);
      expect(chain[chain.length - 1]).toBe(ca.bundle()[0]);

      await writeFile(join(s.dir, `${name}-leaf.pem`), chain[0] ?? '');
      await writeFile(join(s.dir, `${name}-untrusted.pem`), chain.slice(1, -1).join('') || (chain[0] ?? ''));
      await writeFile(join(s.dir, `${name}-bundle.pem`), ca.bundle().join(''));
      for (const purpose of ['sslclient', 'sslserver']) {
        const verified = await openssl([
          'verify',
          '-purpose',
          purpose,
          '-CAfile',
          `${name}-bundle.pem`,
          '-untrusted',
          `${name}-untrusted.pem`,
          `${name}-leaf.pem`,
        ]);
        expect(verified).toContain(': OK');
      }

      const text = await openssl(['x509', '-in', `${name}-leaf.pem`, '-noout', '-text']);
      expect(text).toMatch(/Subject:\s*\n/);
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toMatch(
        keyType === 'ec-p256'
          ? /X509v3 Key Usage: critical\s+Digital Signature\s*\n/
          : /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\s*\n/,
      );
      expect(text).not.toContain('Certificate Sign');
      expect(text).toMatch(
        /X509v3 Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
      );
      expect(text).toMatch(new RegExp(`X509v3 Subject Alternative Name: critical\\s+URI:${spiffeId}\\s*\\n`));
      expect(text).toContain('X509v3 Subject Key Identifier');
      expect(text).toContain('X509v3 Authority Key Identifier');
      expect(text).not.toContain('DNS:');

      const leaf = readCertificate(chain[0] ?? '', 'workload_chain_invalid');
      expect(leaf.serialHex).toMatch(/^[89A-F][0-9A-F]{31}$/);
      expect(leaf.notBefore.getTime()).toBeLessThanOrEqual(before - 119_000);
      expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe((24 * 3600 + 120) * 1000);

      const { rows } = await ca.ca.pool.query(
        'SELECT spiffe_id, caller, auth_method, key_type, not_after FROM ca_issuances WHERE serial = $1',
        [leaf.serialHex],
      );
      expect(rows).toEqual([
        {
          spiffe_id: spiffeId,
          caller: `token:default/${name}`,
          auth_method: 'token',
          key_type: keyType,
          not_after: leaf.notAfter,
        },
      ]);
    },
  );

  it.each([
    [3600, 3600],
    [0, 24 * 3600],
    [90 * 24 * 3600, 90 * 24 * 3600],
  ])('validity_duration %i gives a lifetime of %i s', async (requested, lifetime) => {
    const spiffeId = workloadId('ttl', `sa-${requested}`);
    const chain = await cas.ec
      .tokenClient('ttl', `sa-${requested}`)
      .createCertificate(csrFor(spiffeId).csr, requested);
    const leaf = readCertificate(chain[0] ?? '', 'workload_chain_invalid');
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe((lifetime + 120) * 1000);
  });

  it('counts issued certificates by key type and observes signing latency', async () => {
    const text = await cas.ec.ca.metrics.issued.get();
    const byKey = Object.fromEntries(
      text.values.map((v) => [`${v.labels.key_type}/${v.labels.auth}`, v.value]),
    );
    expect(byKey['ec-p256/token']).toBeGreaterThanOrEqual(1);
    expect(byKey['rsa-2048/token']).toBeGreaterThanOrEqual(1);
    const metrics = await cas.ec.ca.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(
      /portcullis_ca_signing_duration_seconds_count\{[^}]*key_type="ec-p256"[^}]*\} [1-9]/,
    );
  });

  it('many concurrent requests are all recorded (group commit)', async () => {
    const client = cas.ec.tokenClient('load', 'many');
    const csrs = Array.from({ length: 40 }, () => csrFor(workloadId('load', 'many')).csr);
    const chains = await Promise.all(csrs.map((csr) => client.createCertificate(csr)));
    const serials = chains.map((c) => readCertificate(c[0] ?? '', 'workload_chain_invalid').serialHex);
    const { rows } = await cas.ec.ca.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM ca_issuances WHERE serial = ANY($1)',
      [serials],
    );
    expect(rows[0]?.n).toBe(40);
  });
});
