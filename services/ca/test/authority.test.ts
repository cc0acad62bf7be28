// The authority in Postgres: replicas agree on one root, restarts keep it, the trust bundle, rotation with overlap and pruning.
import { parseSpiffeBundleDocument, readCertificate } from '@portcullis/pki';
import { CaClient } from '@portcullis/pki/ca-client';
import { ConfigError } from '@portcullis/runtime';
import { type TestDatabase, waitFor } from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  createTestDatabase,
  csrFor,
  type RunningCa,
  type Shared,
  shared,
  startCa,
  workloadId,
} from './ca-fixture.ts';

let s: Shared;
const dbs: TestDatabase[] = [];
beforeAll(async () => {
  s = await shared();
});
afterAll(async () => {
  await Promise.all(dbs.map((db) => db.drop()));
  await s.cleanup();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  dbs.push(db);
  return db;
}

const serialOf = (pem: string | undefined) => readCertificate(pem ?? '', 'ca_certificate_invalid').serialHex;
const issuerOf = (pem: string | undefined) =>
  readCertificate(pem ?? '', 'ca_certificate_invalid').issuerDer.toString('hex');
const subjectOf = (pem: string | undefined) =>
  readCertificate(pem ?? '', 'ca_certificate_invalid').subjectDer.toString('hex');

describe('one authority per database', () => {
  it('two CAs started at once on one database agree on one root', async () => {
    const db = await database();
    const [a, b] = await Promise.all([startCa(db, s), startCa(db, s)]);
    try {
      expect(a.bundle()).toEqual(b.bundle());
      expect(a.bundle()).toHaveLength(1);
      const { rows } = await a.ca.pool.query(
        "SELECT count(*)::int AS n FROM ca_audit WHERE action = 'authority.create'",
      );
      expect(rows[0].n).toBe(1);
      // A certificate from one replica renews at the other over mutual TLS.
      const { keyPem, csr } = csrFor(workloadId('default', 'web'));
      const chainPem = await a.tokenClient('default', 'web').createCertificate(csr);
      const renewal = new CaClient({
        address: b.address,
        trustBundle: b.bundle,
        clientCertificate: () => ({ keyPem, chainPem }),
      });
      try {
        expect(await renewal.createCertificate(csrFor(workloadId('default', 'web')).csr)).toHaveLength(2);
      } finally {
        renewal.close();
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a restart keeps the root and the issuance records', async () => {
    const db = await database();
    const first = await startCa(db, s);
    const chain = await first
      .tokenClient('default', 'web')
      .createCertificate(csrFor(workloadId('default', 'web')).csr);
    const root = first.bundle()[0];
    await first.close();
    const second = await startCa(db, s);
    try {
      expect(second.bundle()).toEqual([root]);
      const { rows } = await second.ca.pool.query('SELECT spiffe_id FROM ca_issuances WHERE serial = $1', [
        serialOf(chain[0]),
      ]);
      expect(rows).toEqual([{ spiffe_id: workloadId('default', 'web') }]);
      // And it still signs under that root.
      const again = await second
        .tokenClient('default', 'web')
        .createCertificate(csrFor(workloadId('default', 'web')).csr);
      expect(again[again.length - 1]).toBe(root);
    } finally {
      await second.close();
    }
  });

  it.each([
    ['another trust domain', { CA_TRUST_DOMAIN: 'other.domain' }, 'CA_TRUST_DOMAIN'],
    [
      'another key-encryption secret',
      { CA_KEY_ENCRYPTION_KEY: 'a-different-secret-of-enough-bytes' },
      'key_secret_mismatch',
    ],
  ])('a restart with %s is refused', async (_name, env, expected) => {
    const db = await database();
    await (await startCa(db, s)).close();
    const error = await startCa(db, s, env).then(
      async (ca) => {
        await ca.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    if (expected === 'CA_TRUST_DOMAIN') {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('CA_TRUST_DOMAIN');
    } else {
      expect((error as { code?: string }).code).toBe(expected);
    }
  });
});

describe('the trust bundle', () => {
  let ca: RunningCa;
  beforeAll(async () => {
    ca = await startCa(await database(), s);
  });
  afterAll(() => ca.close());

  it.each([
    ['no preference', {}, '', 'pem'],
    ['?format=pem', {}, '?format=pem', 'pem'],
    ['?format=spiffe', {}, '?format=spiffe', 'spiffe'],
    ['Accept: application/json', { accept: 'application/json' }, '', 'spiffe'],
  ] as const)('%s gives %s', async (_name, headers, query, kind) => {
    const res = await ca.ca.app.inject({ method: 'GET', url: `/v1/trust-bundle${query}`, headers });
    expect(res.statusCode).toBe(200);
    if (kind === 'pem') {
      expect(res.headers['content-type']).toContain('application/x-pem-file');
      expect(res.body).toBe(ca.bundle().join(''));
    } else {
      expect(res.headers['content-type']).toContain('application/json');
      const parsed = parseSpiffeBundleDocument(res.body);
      expect(parsed.rootsPem).toEqual(ca.bundle());
      expect(parsed.sequence).toBe(1);
      expect(parsed.refreshHintSeconds).toBe(300);
    }
    const again = await ca.ca.app.inject({
      method: 'GET',
      url: `/v1/trust-bundle${query}`,
      headers: { ...headers, 'if-none-match': String(res.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
  });

  it('an unknown format is a validation error', async () => {
    const res = await ca.ca.app.inject({ method: 'GET', url: '/v1/trust-bundle?format=der' });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe('validation_failed');
  });

  it('is served over gRPC too', async () => {
    const client = new CaClient({ address: ca.address, trustBundle: ca.bundle });
    try {
      expect(await client.trustBundle()).toEqual({
        trustDomain: 'cluster.local',
        roots: ca.bundle(),
        sequence: 1,
        refreshHintSeconds: 300,
      });
    } finally {
      client.close();
    }
  });
});

describe('root rotation', () => {
  it.each([
    ['no token', undefined, 401],
    ['a wrong token', 'Bearer not-the-admin-token-at-all', 401],
    ['a non-bearer header', `Basic ${ADMIN_TOKEN}`, 401],
  ])('is refused with %s', async (_name, authorization, status) => {
    const ca = await startCa(await database(), s);
    try {
      const res = await ca.ca.app.inject({
        method: 'POST',
        url: '/v1/authority/rotate',
        headers: authorization ? { authorization } : {},
        payload: {},
      });
      expect(res.statusCode).toBe(status);
      expect(ca.bundle()).toHaveLength(1);
    } finally {
      await ca.close();
    }
  });

  it('is refused when no admin token is configured', async () => {
    const ca = await startCa(await database(), s, { CA_ADMIN_TOKEN: '' });
    try {
      const res = await ca.ca.app.inject({
        method: 'POST',
        url: '/v1/authority/rotate',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: {},
      });
      expect(res.statusCode).toBe(403);
    } finally {
      await ca.close();
    }
  });

  it('keeps both roots for the overlap, signs with the new one, and reaches the other replica', async () => {
    let now = Date.now();
    const clock = () => now;
    const db = await database();
    const [a, b] = await Promise.all([startCa(db, s, {}, clock), startCa(db, s, {}, clock)]);
    try {
      const oldRoot = a.bundle()[0];
      const before = await a
        .tokenClient('default', 'web')
        .createCertificate(csrFor(workloadId('default', 'web')).csr);
      const oldServing = a.ca.serving?.chainPem() ?? [];
      const res = await a.ca.app.inject({
        method: 'POST',
        url: '/v1/authority/rotate',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: { overlap: '1h' },
      });
      expect(res.statusCode).toBe(200);
      const view = res.json();
      expect(view.bundle_sequence).toBe(2);
      expect(view.roots.map((r: { role: string }) => r.role)).toEqual(['retiring', 'active']);
      expect(a.bundle()).toHaveLength(2);
      expect(a.bundle()[0]).toBe(oldRoot);
      const newRoot = a.bundle()[1];

      const after = await a
        .tokenClient('default', 'web')
        .createCertificate(csrFor(workloadId('default', 'web')).csr);
      expect(after[after.length - 1]).toBe(newRoot);
      expect(before[before.length - 1]).toBe(oldRoot);
      // The CA keeps serving under the old root, so clients that hold only the old bundle still reach it.
      // The serving certificate is reissued on the change, still under the old root.
      await waitFor(() => serialOf(a.ca.serving?.chainPem()[0]) !== serialOf(oldServing[0]), {
        message: 'a new serving certificate',
      });
      expect(issuerOf(a.ca.serving?.chainPem()[0])).toBe(subjectOf(oldRoot));
      const oldBundleClient = new CaClient({ address: a.address, trustBundle: () => [oldRoot ?? ''] });
      try {
        expect((await oldBundleClient.trustBundle()).roots).toEqual([oldRoot, newRoot]);
      } finally {
        oldBundleClient.close();
      }

      // The other replica learns the rotation at its next maintenance pass.
      expect(b.bundle()).toHaveLength(1);
      await b.ca.authority.maintain();
      expect(b.bundle()).toEqual(a.bundle());
      const fromB = await b
        .tokenClient('default', 'web')
        .createCertificate(csrFor(workloadId('default', 'web')).csr);
      expect(fromB[fromB.length - 1]).toBe(newRoot);

      // After the overlap the old root is pruned (once, by whichever replica gets there first).
      now += 3600_000 + 1000;
      await Promise.all([a.ca.authority.maintain(), b.ca.authority.maintain()]);
      await a.ca.authority.maintain();
      expect(a.bundle()).toEqual([newRoot]);
      expect(b.bundle()).toEqual([newRoot]);
      await waitFor(() => issuerOf(a.ca.serving?.chainPem()[0]) === subjectOf(newRoot), {
        message: 'a serving certificate under the new root',
      });
      const { rows } = await a.ca.pool.query(
        "SELECT count(*)::int AS n FROM ca_audit WHERE action = 'root.prune'",
      );
      expect(rows[0].n).toBe(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('in two phases: prepare publishes the new root, activate makes it sign', async () => {
    const ca = await startCa(await database(), s, { CA_INTERMEDIATE: 'true' });
    const rotate = (mode: string) =>
      ca.ca.app.inject({
        method: 'POST',
        url: '/v1/authority/rotate',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        payload: { mode },
      });
    const issue = async () =>
      (await ca.tokenClient('default', 'web').createCertificate(csrFor(workloadId('default', 'web')).csr)).at(
        -1,
      );
    try {
      const oldRoot = ca.bundle()[0];
      expect((await rotate('activate')).statusCode).toBe(409);
      expect((await rotate('prepare')).statusCode).toBe(200);
      expect(ca.bundle()).toHaveLength(2);
      expect(await issue()).toBe(oldRoot);
      expect((await rotate('prepare')).statusCode).toBe(409);
      expect((await rotate('activate')).statusCode).toBe(200);
      expect(await issue()).toBe(ca.bundle()[1]);
      const { rows } = await ca.ca.pool.query(
        "SELECT action FROM ca_audit WHERE action LIKE 'root.%' ORDER BY id",
      );
      expect(rows.map((r: { action: string }) => r.action)).toEqual(['root.prepare', 'root.activate']);
    } finally {
      await ca.close();
    }
  });

  it('happens on schedule when the root has less than CA_ROOT_ROTATE_BEFORE left', async () => {
    const ca = await startCa(await database(), s, { CA_ROOT_TTL: '400d', CA_ROOT_ROTATE_BEFORE: '365d' });
    try {
      await ca.ca.authority.maintain();
      expect(ca.bundle()).toHaveLength(1);
      const late = await startCa(
        dbs.at(-1) as TestDatabase,
        s,
        { CA_ROOT_TTL: '400d', CA_ROOT_ROTATE_BEFORE: '365d' },
        () => Date.now() + 40 * 86_400_000,
      );
      try {
        await late.ca.authority.maintain();
        expect(late.bundle()).toHaveLength(2);
        const { rows } = await late.ca.pool.query("SELECT actor FROM ca_audit WHERE action = 'root.rotate'");
        expect(rows).toEqual([{ actor: 'ca-schedule' }]);
      } finally {
        await late.close();
      }
    } finally {
      await ca.close();
    }
  });
});
