// The workload client: obtaining, persisting, serving, renewing and recovering, on a manual clock.
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { rotateRoot } from '../src/authority.ts';
import { readCertificate } from '../src/certificate-info.ts';
import { verifyPeerSpiffeId } from '../src/peer-identity.ts';
import { WorkloadIdentity, type WorkloadIdentityOptions } from '../src/workload-identity.ts';
import {
  issueLeaf,
  ManualClock,
  openTestAuthority,
  SECRET,
  type TestAuthority,
  TRUST_DOMAIN,
  testAuthority,
  workloadId,
} from './fixtures.ts';
import { makeTempDir, removeDir } from './openssl.ts';

const ID = workloadId('shop', 'cart');
let base: TestAuthority;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  base = await testAuthority({ intermediate: true });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A CA whose clock is `clock`, a request function that can be made to fail, and a workload wired to both. */
async function setup(overrides: Partial<WorkloadIdentityOptions> = {}, clock = new ManualClock()) {
  const ca = await openTestAuthority(base.state, { now: () => clock.now() });
  const dir = await makeTempDir('workload');
  cleanups.push(() => removeDir(dir));
  const control = { failing: false, calls: 0, bundle: [...ca.bundlePem] as string[] };
  const request = async (csrPem: string, ttlSeconds: number) => {
    control.calls++;
    if (control.failing) throw new Error('the CA is unavailable');
    return ca.issuer.issue({ csr: csrPem, ttlSeconds }).chainPem;
  };
  const make = (more: Partial<WorkloadIdentityOptions> = {}) => {
    const identity = new WorkloadIdentity({
      ...('trustDomain' in overrides ? {} : { spiffeId: ID }),
      request,
      trustBundle: async () => control.bundle,
      dir,
      ttlSeconds: 3600,
      clock,
      random: () => 0.5,
      ...overrides,
      ...more,
    } as WorkloadIdentityOptions);
    cleanups.push(() => identity.stop());
    return identity;
  };
  return { clock, ca, dir, control, make, identity: make() };
}

const leafOf = (identity: WorkloadIdentity) =>
  readCertificate(identity.pem().chainPem[0] ?? '', 'workload_chain_invalid');

describe('WorkloadIdentity', () => {
  it('obtains a certificate, keeps it on disk and serves mutual TLS with it', async () => {
    const { identity, dir, ca, make } = await setup();
    expect(identity.status().state).toBe('NOT_READY');
    await identity.start();
    expect(identity.status()).toMatchObject({ state: 'OK', spiffeId: ID });
    const files = Object.fromEntries(
      await Promise.all(
        ['key.pem', 'cert-chain.pem', 'root-cert.pem'].map(
          async (name) => [name, await fs.stat(path.join(dir, name))] as const,
        ),
      ),
    );
    expect((files['key.pem']?.mode ?? 0) & 0o777).toBe(0o600);
    expect(await fs.readFile(path.join(dir, 'root-cert.pem'), 'utf8')).toBe(ca.bundlePem.join(''));
    const chain = await fs.readFile(path.join(dir, 'cert-chain.pem'), 'utf8');
    expect(chain.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
    const key = crypto.createPrivateKey(await fs.readFile(path.join(dir, 'key.pem'), 'utf8'));
    expect(new crypto.X509Certificate(chain).checkPrivateKey(key)).toBe(true);

    // A second workload as the client; the server checks its SPIFFE ID, the client checks the server's.
    const clientId = workloadId('shop', 'checkout');
    const client = make({ spiffeId: clientId, dir: path.join(dir, 'client') });
    await client.start();
    const seen: string[] = [];
    const server = tls.createServer(identity.tlsOptions(), (socket) => {
      seen.push(verifyPeerSpiffeId(socket, [clientId]).spiffeId);
      socket.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    for (const options of [
      client.tlsOptions([ID]),
      {
        secureContext: client.secureContext(),
        checkServerIdentity: client.tlsOptions([ID]).checkServerIdentity,
      },
    ]) {
      const socket = tls.connect({ host: '127.0.0.1', port, ...options });
      const [data] = await Promise.all([
        new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString()))),
        once(socket, 'secureConnect'),
      ]);
      expect(data).toBe('ok');
      socket.destroy();
    }
    expect(seen).toEqual([clientId, clientId]);
  });

  it('renews at half its lifetime minus jitter, with a new key', async () => {
    const { identity, clock, control, dir } = await setup();
    await identity.start();
    const first = leafOf(identity);
    const lifetime = first.notAfter.getTime() - first.notBefore.getTime();
    const renewAt = first.notBefore.getTime() + lifetime * (0.5 - 0.1 * 0.5);
    expect(identity.status().renewAt?.getTime()).toBe(renewAt);

    clock.advanceTo(renewAt - 1);
    expect(control.calls).toBe(1);
    const rotated = once(identity, 'rotated');
    clock.advanceTo(renewAt);
    const [event] = await rotated;
    expect(control.calls).toBe(2);
    const second = leafOf(identity);
    expect(event).toEqual({ reason: 'certificate', serial: second.serialHex, notAfter: second.notAfter });
    expect(second.serialHex).not.toBe(first.serialHex);
    expect(second.spkiDer.equals(first.spkiDer)).toBe(false);
    expect(await fs.readFile(path.join(dir, 'cert-chain.pem'), 'utf8')).toContain(second.pem.trim());
    expect(identity.status().state).toBe('OK');
  });

  it('keeps its certificate and warns while the CA fails, then recovers on a backed-off retry', async () => {
    const { identity, clock, control } = await setup({ retry: { initialMs: 1000, maxMs: 8000 } });
    await identity.start();
    const first = leafOf(identity);
    control.failing = true;
    const renewAt = identity.status().renewAt?.getTime() ?? 0;
    const failed = once(identity, 'failed');
    clock.advanceTo(renewAt);
    await failed;
    expect(identity.status()).toMatchObject({
      state: 'WARN',
      serial: first.serialHex,
      message: 'the CA is unavailable',
    });
    expect(identity.secureContext()).toBeDefined();

    // Backoff doubles (x0.8–1.2 jitter; random() = 0.5 gives exactly 1 s, then 2 s).
    const secondFailure = once(identity, 'failed');
    clock.advance(1000);
    await secondFailure;
    expect(control.calls).toBe(3);
    control.failing = false;
    clock.advance(1999);
    expect(control.calls).toBe(3);
    const rotated = once(identity, 'rotated');
    clock.advance(1);
    await rotated;
    expect(identity.status().state).toBe('OK');
    expect(leafOf(identity).serialHex).not.toBe(first.serialHex);
  });

  it('turns to ERROR when the certificate expires unrenewed', async () => {
    const { identity, clock, control } = await setup({ retry: { initialMs: 60_000, maxMs: 60_000 } });
    await identity.start();
    control.failing = true;
    clock.advanceTo(leafOf(identity).notAfter.getTime());
    await vi.waitFor(() => expect(identity.status().state).toBe('ERROR'));
    expect(identity.status().message).toMatch(/expired/);
    expect(() => identity.secureContext()).toThrow(expect.objectContaining({ code: 'workload_not_ready' }));
  });

  it('starts without a CA, reports ERROR, and becomes ready when a retry succeeds', async () => {
    const { identity, clock, control } = await setup();
    control.failing = true;
    await identity.start();
    expect(identity.status()).toMatchObject({ state: 'ERROR', message: 'the CA is unavailable' });
    expect(() => identity.tlsOptions()).toThrow(expect.objectContaining({ code: 'workload_not_ready' }));
    const ready = identity.whenReady();
    control.failing = false;
    clock.advance(1000);
    await ready;
    expect(identity.status().state).toBe('OK');
  });

  it('restarts from disk without asking the CA, and ignores a key that does not match', async () => {
    const { identity, control, make, dir } = await setup();
    await identity.start();
    const serial = leafOf(identity).serialHex;
    identity.stop();
    const restarted = make();
    await restarted.start();
    expect(control.calls).toBe(1);
    expect(leafOf(restarted).serialHex).toBe(serial);
    restarted.stop();

    await fs.writeFile(
      path.join(dir, 'key.pem'),
      crypto
        .generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .privateKey.export({ format: 'pem', type: 'pkcs8' }),
    );
    const third = make();
    await third.start();
    expect(control.calls).toBe(2);
    expect(leafOf(third).serialHex).not.toBe(serial);
    const other = make({ spiffeId: workloadId('shop', 'other') });
    await other.start();
    expect(control.calls).toBe(3);
  });

  it.each<[string, (ca: TestAuthority) => string[]]>([
    ['a chain for another identity', (ca) => issueLeaf(ca.issuer, workloadId('shop', 'other')).chainPem],
    ['a chain for another key', (ca) => issueLeaf(ca.issuer, ID).chainPem],
    ['an empty chain', () => []],
    ['a chain with a missing intermediate', (ca) => [issueLeaf(ca.issuer, ID).certPem, ca.rootPem]],
  ])('refuses %s from the CA', async (_name, answer) => {
    const { identity } = await setup({ request: async () => answer(base) });
    await identity.start();
    expect(identity.status()).toMatchObject({
      state: 'ERROR',
      message: expect.stringContaining('the CA returned an unusable chain'),
    });
  });

  it('refuses a chain that does not reach the trust bundle', async () => {
    const foreign = await testAuthority();
    const { identity } = await setup({ trustBundle: async () => foreign.bundlePem as string[] });
    await identity.start();
    expect(identity.status()).toMatchObject({
      state: 'ERROR',
      message: expect.stringContaining('trust bundle'),
    });
  });

  it('picks up a rotated trust bundle between renewals', async () => {
    const { identity, clock, control, dir } = await setup({ bundleRefreshSeconds: 60 });
    await identity.start();
    const rotatedState = await rotateRoot(base.state, { secret: SECRET });
    control.bundle = [...(await openTestAuthority(rotatedState)).bundlePem];
    const rotated = once(identity, 'rotated');
    clock.advance(60_000);
    const [event] = await rotated;
    expect(event).toMatchObject({ reason: 'bundle', serial: leafOf(identity).serialHex });
    expect(identity.tlsOptions().ca).toHaveLength(2);
    expect(
      (await fs.readFile(path.join(dir, 'root-cert.pem'), 'utf8')).match(/BEGIN CERTIFICATE/g),
    ).toHaveLength(2);
    expect(control.calls).toBe(1);
  });

  it('renews at once when its own root leaves the bundle', async () => {
    const { identity, clock, control } = await setup({ bundleRefreshSeconds: 60 });
    await identity.start();
    const other = await testAuthority();
    control.bundle = [...control.bundle, ...other.bundlePem];
    const bundleEvent = once(identity, 'rotated');
    clock.advance(60_000);
    await bundleEvent;
    control.bundle = [...other.bundlePem];
    const failed = once(identity, 'failed');
    clock.advance(60_000);
    // Our CA still chains to the old root, so the renewal's answer is refused: the point is that it was attempted.
    await failed;
    expect(control.calls).toBe(2);
  });

  it('waits in steps below the timer limit for long lifetimes', async () => {
    const { identity, clock, control } = await setup({ ttlSeconds: 80 * 86_400 });
    await identity.start();
    const renewAt = identity.status().renewAt?.getTime() ?? 0;
    expect(renewAt - clock.now()).toBeGreaterThan(2 ** 31);
    expect(Math.max(...clock.delays)).toBeLessThanOrEqual(2 ** 31 - 1);
    clock.advanceTo(renewAt - 1);
    expect(control.calls).toBe(1);
    const rotated = once(identity, 'rotated');
    clock.advanceTo(renewAt);
    await rotated;
    expect(control.calls).toBe(2);
  });

  it('shares one attempt between concurrent renewals, uses RSA keys when asked, and stops cleanly', async () => {
    const { identity, clock, control } = await setup({
      keyType: 'rsa-2048',
      trustDomain: TRUST_DOMAIN,
      namespace: 'shop',
      serviceAccount: 'cart',
    } as Partial<WorkloadIdentityOptions>);
    expect(identity.spiffeId).toBe(ID);
    await identity.start();
    await Promise.all([identity.renewNow(), identity.renewNow()]);
    expect(control.calls).toBe(2);
    const leaf = leafOf(identity);
    expect(leaf.publicKey.asymmetricKeyType).toBe('rsa');
    expect([...(leaf.keyUsage ?? [])]).toEqual(['digitalSignature', 'keyEncipherment']);
    identity.stop();
    expect(clock.pending).toBe(0);
    expect(identity.status().state).toBe('NOT_READY');
  });
});
