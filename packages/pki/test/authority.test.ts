// Authorities: generated and plugged-in (openssl-made cacerts) CAs, state round trips, rotation with overlap.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthorityState,
  activatePreparedRoot,
  type CacertsFiles,
  createAuthority,
  importPluggedAuthority,
  openAuthority,
  parseAuthorityState,
  prepareRootRotation,
  pruneRetiredRoots,
  readCacertsDirectory,
  reencryptAuthorityState,
  renewIntermediate,
  rotateRoot,
  rotateToPluggedAuthority,
  trustBundleOf,
} from '../src/authority.ts';
import { readCertificate } from '../src/certificate-info.ts';
import { issueLeaf, openTestAuthority, SECRET, TRUST_DOMAIN, workloadId } from './fixtures.ts';
import { makeTempDir, openssl, opensslOk, removeDir, writeFiles } from './openssl.ts';

const ID = workloadId('default', 'web');
const HOUR = 3600 * 1000;
let dir: string;

beforeAll(async () => {
  dir = await makeTempDir('authority');
});
afterAll(async () => {
  await removeDir(dir);
});

/** openssl verify of `leafPem` against `bundle` (all roots in one CAfile), with the chain's intermediates untrusted. */
async function verifies(
  name: string,
  chainPem: readonly string[],
  bundle: readonly string[],
): Promise<boolean> {
  const files: Record<string, string> = {
    [`${name}-leaf.pem`]: chainPem[0] ?? '',
    [`${name}-bundle.pem`]: bundle.join(''),
  };
  const intermediates = chainPem
    .slice(1)
    .filter((pem) => !readCertificate(pem, 'ca_certificate_invalid').selfIssued);
  if (intermediates.length > 0) files[`${name}-untrusted.pem`] = intermediates.join('');
  await writeFiles(dir, files);
  const untrusted = intermediates.length > 0 ? ['-untrusted', `${name}-untrusted.pem`] : [];
  const result = await openssl(
    ['verify', '-CAfile', `${name}-bundle.pem`, ...untrusted, `${name}-leaf.pem`],
    dir,
  );
  return result.code === 0;
}

/** An Istio-style cacerts directory made with the openssl CLI, as `istioctl`'s Makefile does. */
async function opensslCacerts(name: string, key: 'ec' | 'rsa'): Promise<string> {
  const out = path.join(dir, name);
  await fs.mkdir(out);
  const newkey =
    key === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  await writeFiles(out, {
    'ext.cnf': [
      '[v3_int]',
      'basicConstraints = critical, CA:TRUE, pathlen:0',
      'keyUsage = critical, digitalSignature, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  });
  await opensslOk(
    [
      'req',
      '-x509',
      '-nodes',
      ...newkey,
      '-keyout',
      'root-key.pem',
      '-out',
      'root-cert.pem',
      '-days',
      '3650',
      '-subj',
      '/O=Istio/CN=Root CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    out,
  );
  await opensslOk(
    [
      'req',
      '-new',
      '-nodes',
      ...newkey,
      '-keyout',
      'ca-key.pem',
      '-out',
      'ca.csr',
      '-subj',
      '/O=Istio/CN=Intermediate CA',
    ],
    out,
  );
  await opensslOk(
    [
      'x509',
      '-req',
      '-in',
      'ca.csr',
      '-CA',
      'root-cert.pem',
      '-CAkey',
      'root-key.pem',
      '-CAcreateserial',
      '-days',
      '730',
      '-out',
      'ca-cert.pem',
      '-extfile',
      'ext.cnf',
      '-extensions',
      'v3_int',
    ],
    out,
  );
  const chain =
    (await fs.readFile(path.join(out, 'ca-cert.pem'), 'utf8')) +
    (await fs.readFile(path.join(out, 'root-cert.pem'), 'utf8'));
  await fs.writeFile(path.join(out, 'cert-chain.pem'), chain);
  return out;
}

describe('generated authorities', () => {
  it.each([
    ['ec-p256', false],
    ['ec-p256', true],
    ['rsa-2048', true],
  ] as const)(
    '%s (intermediate: %s) round-trips through JSON and issues verifiable leaves',
    async (keyType, intermediate) => {
      const state = await createAuthority({
        trustDomain: TRUST_DOMAIN,
        keyType,
        intermediate,
        secret: SECRET,
      });
      const json = JSON.stringify(state);
      expect(json).not.toMatch(/PRIVATE KEY/);
      const reloaded = parseAuthorityState(JSON.parse(json));
      expect(reloaded).toEqual(state);
      expect(state.bundleSequence).toBe(1);
      expect(state.active.chainPem).toHaveLength(intermediate ? 2 : 1);
      const { issuer, trustBundlePem } = await openAuthority(reloaded, { secret: SECRET });
      const leaf = issueLeaf(issuer, ID);
      expect(await verifies(`gen-${keyType}-${intermediate}`, leaf.chainPem, trustBundlePem)).toBe(true);

      const root = readCertificate(trustBundlePem[0] ?? '', 'ca_certificate_invalid');
      expect(root.isCa).toBe(true);
      expect(root.selfIssued).toBe(true);
      expect([...(root.keyUsage ?? [])]).toEqual(expect.arrayContaining(['keyCertSign', 'cRLSign']));
      expect(root.subjectAltNames.uris).toEqual([`spiffe://${TRUST_DOMAIN}`]);
    },
  );

  it('refuses to open with the wrong secret', async () => {
    const state = await createAuthority({ trustDomain: TRUST_DOMAIN, secret: SECRET });
    await expect(openAuthority(state, { secret: 'not-the-secret-that-encrypted-it' })).rejects.toMatchObject({
      code: 'key_secret_mismatch',
    });
  });

  it('re-encrypts every key under a new secret', async () => {
    const state = await createAuthority({ trustDomain: TRUST_DOMAIN, intermediate: true, secret: SECRET });
    const newSecret = 'the-next-key-encryption-secret-value';
    const moved = await reencryptAuthorityState(state, SECRET, newSecret);
    await expect(openAuthority(moved, { secret: SECRET })).rejects.toMatchObject({
      code: 'key_secret_mismatch',
    });
    const { issuer } = await openAuthority(moved, { secret: newSecret });
    expect(issueLeaf(issuer, ID).chainPem).toHaveLength(3);
    await expect(renewIntermediate(moved, { secret: newSecret })).resolves.toBeDefined();
  });

  it('renews the intermediate under the same root', async () => {
    const state = await createAuthority({ trustDomain: TRUST_DOMAIN, intermediate: true, secret: SECRET });
    const renewed = await renewIntermediate(state, { secret: SECRET });
    expect(renewed.active.chainPem[0]).not.toBe(state.active.chainPem[0]);
    expect(renewed.active.chainPem[1]).toBe(state.active.chainPem[1]);
    expect(trustBundleOf(renewed)).toEqual(trustBundleOf(state));
    expect(renewed.bundleSequence).toBe(state.bundleSequence);
    const { issuer } = await openAuthority(renewed, { secret: SECRET });
    expect(await verifies('renewed', issueLeaf(issuer, ID).chainPem, trustBundleOf(renewed))).toBe(true);
    const rootOnly = await createAuthority({ trustDomain: TRUST_DOMAIN, secret: SECRET });
    await expect(renewIntermediate(rootOnly, { secret: SECRET })).rejects.toMatchObject({
      code: 'authority_state_invalid',
    });
  });
});

describe('parseAuthorityState', () => {
  let state: AuthorityState;
  beforeAll(async () => {
    state = await createAuthority({ trustDomain: TRUST_DOMAIN, secret: SECRET });
  });

  it.each<[string, (s: AuthorityState) => unknown, string]>([
    ['not an object', () => 'state', 'authority_state_invalid'],
    ['another format', (s) => ({ ...s, format: 'portcullis.authority/v0' }), 'authority_state_invalid'],
    ['a bad trust domain', (s) => ({ ...s, trustDomain: 'Not A Domain' }), 'authority_state_invalid'],
    ['a zero sequence', (s) => ({ ...s, bundleSequence: 0 }), 'authority_state_invalid'],
    ['no roots', (s) => ({ ...s, roots: [] }), 'authority_state_invalid'],
    [
      'a root without addedAt',
      (s) => ({ ...s, roots: [{ certPem: s.roots[0]?.certPem }] }),
      'authority_state_invalid',
    ],
    [
      'an active CA whose root is not in the bundle',
      (s) => ({ ...s, roots: [{ ...s.roots[0], certPem: 'x' }] }),
      'authority_state_invalid',
    ],
    [
      'an unknown origin',
      (s) => ({ ...s, active: { ...s.active, origin: 'elsewhere' } }),
      'authority_state_invalid',
    ],
    [
      'an encrypted key of an unknown format',
      (s) => ({ ...s, active: { ...s.active, encryptedKey: { format: 'v0' } } }),
      'key_format_unsupported',
    ],
  ])('refuses %s', (_name, change, code) => {
    expect(() => parseAuthorityState(change(state))).toThrow(expect.objectContaining({ code }));
  });
});

describe('plugged-in cacerts', () => {
  it.each([
    ['ec', 'with cert-chain.pem', (files: CacertsFiles) => files],
    ['rsa', 'with cert-chain.pem', (files: CacertsFiles) => files],
    ['ec', 'without cert-chain.pem', (files: CacertsFiles) => ({ ...files, certChainPem: '' })],
    [
      'ec',
      'with cert-chain.pem root first',
      (files: CacertsFiles) => ({ ...files, certChainPem: files.rootCertPem + files.caCertPem }),
    ],
  ] as const)('%s %s: leaves chain to leaf, ca-cert, root', async (key, name, change) => {
    const cacerts = await opensslCacerts(`cacerts-${key}-${name.replace(/\W/g, '')}`, key);
    const files = change(await readCacertsDirectory(cacerts));
    const state = await importPluggedAuthority({ trustDomain: TRUST_DOMAIN, files, secret: SECRET });
    expect(state.active.origin).toBe('plugged');
    expect(state.roots).toHaveLength(1);
    expect(state.roots[0]?.encryptedKey).toBeUndefined();
    const { issuer, trustBundlePem } = await openAuthority(state, { secret: SECRET });
    const leaf = issueLeaf(issuer, ID);
    expect(leaf.chainPem).toHaveLength(3);
    expect(readCertificate(leaf.chainPem[1] ?? '', 'ca_certificate_invalid').der).toEqual(
      readCertificate(files.caCertPem, 'ca_certificate_invalid').der,
    );
    expect(await verifies(`plugged-${key}-${name.replace(/\W/g, '')}`, leaf.chainPem, trustBundlePem)).toBe(
      true,
    );
  });

  it('reads a directory without cert-chain.pem', async () => {
    const cacerts = await opensslCacerts('cacerts-nochain', 'ec');
    await fs.rm(path.join(cacerts, 'cert-chain.pem'));
    expect((await readCacertsDirectory(cacerts)).certChainPem).toBe('');
  });

  it.each<[string, (files: CacertsFiles, other: CacertsFiles) => CacertsFiles, string]>([
    ['a ca-key.pem for another certificate', (f, o) => ({ ...f, caKeyPem: o.caKeyPem }), 'ca_key_invalid'],
    ['a ca-key.pem that is not a key', (f) => ({ ...f, caKeyPem: f.caCertPem }), 'ca_key_invalid'],
    [
      'a root-cert.pem of another CA',
      (f, o) => ({ ...f, rootCertPem: o.rootCertPem, certChainPem: '' }),
      'ca_chain_invalid',
    ],
    [
      'a ca-cert.pem with two certificates',
      (f) => ({ ...f, caCertPem: f.caCertPem + f.rootCertPem }),
      'ca_certificate_invalid',
    ],
    ['an empty root-cert.pem', (f) => ({ ...f, rootCertPem: '' }), 'ca_certificate_invalid'],
    [
      'a root-cert.pem holding the intermediate',
      (f) => ({ ...f, rootCertPem: f.caCertPem }),
      'ca_certificate_invalid',
    ],
    [
      'a corrupted ca-cert.pem',
      (f) => ({ ...f, caCertPem: f.caCertPem.replace(/\n[A-Za-z]/, '\n*') }),
      'ca_certificate_invalid',
    ],
  ])('refuses %s', async (_name, change, code) => {
    const files = await readCacertsDirectory(
      await opensslCacerts(`bad-${Math.random().toString(36).slice(2)}`, 'ec'),
    );
    const other = await readCacertsDirectory(
      await opensslCacerts(`other-${Math.random().toString(36).slice(2)}`, 'ec'),
    );
    await expect(
      importPluggedAuthority({ trustDomain: TRUST_DOMAIN, files: change(files, other), secret: SECRET }),
    ).rejects.toMatchObject({ code });
  });

  it('refuses a leaf certificate as ca-cert.pem', async () => {
    const files = await readCacertsDirectory(await opensslCacerts('leaf-as-ca', 'ec'));
    const { issuer } = await openAuthority(
      await importPluggedAuthority({ trustDomain: TRUST_DOMAIN, files, secret: SECRET }),
      { secret: SECRET },
    );
    const leaf = issueLeaf(issuer, ID);
    const pluggedLeaf = { ...files, caCertPem: leaf.certPem, caKeyPem: leaf.keyPem };
    await expect(
      importPluggedAuthority({ trustDomain: TRUST_DOMAIN, files: pluggedLeaf, secret: SECRET }),
    ).rejects.toMatchObject({
      code: 'ca_certificate_invalid',
    });
  });
});

describe('root rotation with overlap', () => {
  it('publishes the new root first, then signs with it, and drops the old root after the overlap', async () => {
    const t0 = Date.now();
    const initial = await createAuthority({
      trustDomain: TRUST_DOMAIN,
      intermediate: true,
      secret: SECRET,
      now: t0,
    });
    const before = await openTestAuthority(initial);
    const oldLeaf = issueLeaf(before.issuer, ID);

    const prepared = await prepareRootRotation(initial, { secret: SECRET, now: t0 });
    expect(trustBundleOf(prepared)).toHaveLength(2);
    expect(prepared.bundleSequence).toBe(2);
    // Until activation, leaves still come from the old root.
    const stillOld = issueLeaf((await openTestAuthority(prepared)).issuer, ID);
    expect(stillOld.chainPem.at(-1)).toBe(before.rootPem);
    await expect(prepareRootRotation(prepared, { secret: SECRET })).rejects.toMatchObject({
      code: 'rotation_in_progress',
    });

    const rotated = activatePreparedRoot(prepared, { overlapSeconds: 48 * 3600, now: t0 });
    expect(rotated.prepared).toBeUndefined();
    expect(rotated.roots[0]?.retireAt).toBe(new Date(t0 + 48 * HOUR).toISOString());
    const after = await openTestAuthority(rotated);
    const newLeaf = issueLeaf(after.issuer, ID);
    expect(after.rootPem).not.toBe(before.rootPem);
    expect(newLeaf.chainPem.at(-1)).toBe(after.rootPem);
    expect(newLeaf.chainPem).toHaveLength(3);

    const overlapBundle = trustBundleOf(rotated);
    expect(await verifies('rot-old-overlap', oldLeaf.chainPem, overlapBundle)).toBe(true);
    expect(await verifies('rot-new-overlap', newLeaf.chainPem, overlapBundle)).toBe(true);
    expect(await verifies('rot-new-oldbundle', newLeaf.chainPem, trustBundleOf(initial))).toBe(false);

    expect(pruneRetiredRoots(rotated, t0 + 47 * HOUR)).toEqual(rotated);
    const pruned = pruneRetiredRoots(rotated, t0 + 49 * HOUR);
    expect(trustBundleOf(pruned)).toEqual([after.rootPem]);
    expect(pruned.bundleSequence).toBe(3);
    expect(await verifies('rot-old-pruned', oldLeaf.chainPem, trustBundleOf(pruned))).toBe(false);
    expect(await verifies('rot-new-pruned', newLeaf.chainPem, trustBundleOf(pruned))).toBe(true);
  });

  it('rotates in one step, and refuses to activate what was not prepared', async () => {
    const initial = await createAuthority({ trustDomain: TRUST_DOMAIN, keyType: 'rsa-2048', secret: SECRET });
    expect(() => activatePreparedRoot(initial)).toThrow(
      expect.objectContaining({ code: 'rotation_not_prepared' }),
    );
    const rotated = await rotateRoot(initial, { secret: SECRET, keyType: 'ec-p256' });
    expect(trustBundleOf(rotated)).toHaveLength(2);
    expect(rotated.active.chainPem).toHaveLength(1);
    expect(
      readCertificate(rotated.active.chainPem[0] ?? '', 'ca_certificate_invalid').publicKey.asymmetricKeyType,
    ).toBe('ec');
  });

  it('moves from a generated root to plugged-in cacerts with an overlap', async () => {
    const initial = await createAuthority({ trustDomain: TRUST_DOMAIN, secret: SECRET });
    const files = await readCacertsDirectory(await opensslCacerts('rotate-to-plugged', 'ec'));
    // openssl dates its certificates without backdating: take "now" after they exist.
    const t0 = Date.now() + 1000;
    const moved = await rotateToPluggedAuthority(initial, {
      files,
      secret: SECRET,
      overlapSeconds: 3600,
      now: t0,
    });
    expect(trustBundleOf(moved)).toHaveLength(2);
    expect(moved.roots[0]?.retireAt).toBe(new Date(t0 + HOUR).toISOString());
    expect(moved.active.origin).toBe('plugged');
    expect(moved.bundleSequence).toBe(2);
    expect(trustBundleOf(pruneRetiredRoots(moved, t0 + 2 * HOUR))).toHaveLength(1);
    // The same cacerts again change nothing in the bundle.
    const again = await rotateToPluggedAuthority(pruneRetiredRoots(moved, t0 + 2 * HOUR), {
      files,
      secret: SECRET,
      now: t0 + 2 * HOUR,
    });
    expect(again.bundleSequence).toBe(3);
    expect(trustBundleOf(again)).toHaveLength(1);
  });
});
