// CA roots and intermediates as serializable state: create, import Istio cacerts, open for issuing, rotate, prune.
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { der } from './asn1.ts';
import { type CertificateInfo, keyIdentifier, readCertificate } from './certificate-info.ts';
import { BACKDATE_SECONDS, checkSigningCertificate, Issuer, type IssuerOptions } from './issuer.ts';
import {
  createSigner,
  generateKeyPair,
  KEY_TYPES,
  type KeyType,
  type Signer,
  spkiDer,
} from './key-algorithms.ts';
import {
  decryptPrivateKey,
  type EncryptedKey,
  encryptPrivateKey,
  type KeyEncryptionSecret,
  parseEncryptedKey,
} from './key-encryption.ts';
import { OID } from './oids.ts';
import { decodePemCertificates, encodePem } from './pem.ts';
import { PkiError } from './pki-error.ts';
import { assertTrustDomain } from './spiffe-id.ts';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  buildTbsCertificate,
  encodeName,
  extendedKeyUsageExtension,
  keyUsageExtension,
  randomSerial,
  type ServerNames,
  serverSubjectAltNameExtension,
  signCertificate,
  subjectKeyIdentifierExtension,
  uriNameConstraintsExtension,
  uriSubjectAltNameExtension,
  wholeSeconds,
} from './x509-builder.ts';

export const AUTHORITY_STATE_FORMAT = 'portcullis.authority/v1';
export const DEFAULT_ROOT_TTL_SECONDS = 10 * 365 * 24 * 60 * 60;
export const DEFAULT_INTERMEDIATE_TTL_SECONDS = 365 * 24 * 60 * 60;
/** Long enough for every 24 h leaf of the old root to be renewed under the new one, with a day to spare. */
export const DEFAULT_OVERLAP_SECONDS = 48 * 60 * 60;

/** A root in the trust bundle. */
export interface TrustedRoot {
  readonly certPem: string;
  /** Absent when the root key is kept elsewhere (a plugged-in `cacerts` root). */
  readonly encryptedKey?: EncryptedKey;
  readonly addedAt: string;
  /** Set when a rotation replaced this root: `pruneRetiredRoots` drops it from the bundle after this instant. */
  readonly retireAt?: string;
}

/** A CA that signs leaves. */
export interface SigningAuthority {
  /** Signing CA first, root last (one certificate when the root signs leaves itself). */
  readonly chainPem: readonly string[];
  readonly encryptedKey: EncryptedKey;
  /** `generated` authorities have their root key in `roots` and can renew their intermediate. */
  readonly origin: 'generated' | 'plugged';
}

/**
 * Everything the CA needs, as plain JSON: private keys are encrypted, so the state can be stored
 * as-is (the CA service keeps it in Postgres). Every function here takes a state and returns a new one.
 */
export interface AuthorityState {
  readonly format: typeof AUTHORITY_STATE_FORMAT;
  readonly trustDomain: string;
  /** Bumped whenever `roots` changes: the SPIFFE bundle's `spiffe_sequence`. */
  readonly bundleSequence: number;
  /** The trust bundle: every root a peer must accept, oldest first. */
  readonly roots: readonly TrustedRoot[];
  readonly active: SigningAuthority;
  /** Set between `prepareRootRotation` and `activatePreparedRoot`: its root is in the bundle but signs nothing yet. */
  readonly prepared?: SigningAuthority;
}

export interface GeneratedCaOptions {
  readonly secret: KeyEncryptionSecret;
  readonly keyType?: KeyType;
  /** Sign leaves with an intermediate under the root (chain leaf, intermediate, root); default false. */
  readonly intermediate?: boolean;
  readonly rootTtlSeconds?: number;
  readonly intermediateTtlSeconds?: number;
  /** Put a critical URI name constraint on the root, so nothing under it is valid outside the trust domain. */
  readonly nameConstraints?: boolean;
  /** Subject O of the CA certificates; defaults to the trust domain (Istio uses the trust domain too). */
  readonly organization?: string;
  /** Milliseconds since the epoch. */
  readonly now?: number;
}

export interface CreateAuthorityOptions extends GeneratedCaOptions {
  readonly trustDomain: string;
}

/** The four files of an Istio `cacerts` secret, as text. */
export interface CacertsFiles {
  /** The signing CA certificate (`ca-cert.pem`). */
  readonly caCertPem: string;
  /** Its private key, unencrypted PEM in PKCS #8, PKCS #1 or SEC 1 (`ca-key.pem`). */
  readonly caKeyPem: string;
  /** One or more roots (`root-cert.pem`); Istio allows several while its own roots transition. */
  readonly rootCertPem: string;
  /** The chain from ca-cert up to the root (`cert-chain.pem`); may repeat ca-cert and the root, or be empty. */
  readonly certChainPem?: string;
}

export interface OpenAuthorityOptions
  extends Omit<IssuerOptions, 'caChainPem' | 'signingKey' | 'trustDomain'> {
  readonly secret: KeyEncryptionSecret;
}

export interface OpenedAuthority {
  readonly state: AuthorityState;
  /** Signs with the active CA; the decrypted key lives only inside it (and its `portableOptions` copies). */
  readonly issuer: Issuer;
  /** PEM roots, oldest first. */
  readonly trustBundlePem: readonly string[];
}

interface CaSpec {
  readonly trustDomain: string;
  readonly organization: string;
  readonly commonName: string;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly pathLength?: number;
  readonly nameConstraints: boolean;
}

/** The certificate above: its subject becomes our issuer, its key identifier our AKI. */
interface IssuingCa {
  readonly subjectDer: Buffer;
  readonly keyId: Buffer;
}

function signerOf(key: KeyObject): Signer {
  const signer = createSigner(key);
  if (signer === undefined)
    throw new PkiError('ca_key_invalid', 'a CA key must be an RSA (2048 bits or more) or P-256 key');
  return signer;
}

/**
 * A CA certificate signed by `signer`, self-signed when `issuer` is undefined. Signing CAs carry the
 * trust domain's own SPIFFE ID (`spiffe://td`, empty path), as SPIRE's do.
 */
function caCertificate(spec: CaSpec, signer: Signer, issuer?: IssuingCa): string {
  const spki = spkiDer(spec.publicKey);
  const keyId = keyIdentifier(spki);
  const subjectDer = encodeName({ organization: spec.organization, commonName: spec.commonName });
  const signing = issuer ?? { subjectDer, keyId };
  const extensions = [
    basicConstraintsExtension(true, spec.pathLength),
    keyUsageExtension(['digitalSignature', 'keyCertSign', 'cRLSign']),
    subjectKeyIdentifierExtension(keyId),
    authorityKeyIdentifierExtension(signing.keyId),
    uriSubjectAltNameExtension([`spiffe://${spec.trustDomain}`], false),
  ];
  if (spec.nameConstraints) extensions.push(uriNameConstraintsExtension([spec.trustDomain]));
  const tbs = buildTbsCertificate({
    serial: randomSerial(),
    signatureAlgorithm: der.preEncoded(signer.algorithmIdentifierDer),
    issuer: der.preEncoded(signing.subjectDer),
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    subject: der.preEncoded(subjectDer),
    subjectPublicKeyInfo: der.preEncoded(spki),
    extensions,
  });
  return encodePem(signCertificate(tbs, signer), 'CERTIFICATE');
}

function shortKeyId(key: KeyObject): string {
  return keyIdentifier(spkiDer(key)).toString('hex').slice(0, 8);
}

function positiveSeconds(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new PkiError('ttl_invalid', `${name} must be a positive whole number of seconds`);
  return value;
}

function issueIntermediate(
  trustDomain: string,
  organization: string,
  root: CertificateInfo,
  rootKey: KeyObject,
  publicKey: KeyObject,
  now: number,
  ttlSeconds: number,
): string {
  const notAfter = wholeSeconds(
    Math.min(now + positiveSeconds(ttlSeconds, 'intermediateTtlSeconds') * 1000, root.notAfter.getTime()),
  );
  return caCertificate(
    {
      trustDomain,
      organization,
      commonName: `Portcullis Intermediate CA ${shortKeyId(publicKey)}`,
      publicKey,
      notBefore: wholeSeconds(now - BACKDATE_SECONDS * 1000),
      notAfter,
      pathLength: 0,
      nameConstraints: false,
    },
    signerOf(rootKey),
    { subjectDer: root.subjectDer, keyId: root.subjectKeyId ?? keyIdentifier(root.spkiDer) },
  );
}

/** A new root (and optionally an intermediate): its bundle entry and the signing authority. */
async function generateCa(
  trustDomain: string,
  options: GeneratedCaOptions,
): Promise<{ root: TrustedRoot; signing: SigningAuthority }> {
  const now = options.now ?? Date.now();
  const keyType = options.keyType ?? 'ec-p256';
  if (!KEY_TYPES.includes(keyType)) throw new PkiError('ca_key_invalid', `unknown CA key type "${keyType}"`);
  const organization = options.organization ?? trustDomain;
  const rootKeys = await generateKeyPair(keyType);
  const rootPem = caCertificate(
    {
      trustDomain,
      organization,
      commonName: `Portcullis Root CA ${shortKeyId(rootKeys.publicKey)}`,
      publicKey: rootKeys.publicKey,
      notBefore: wholeSeconds(now - BACKDATE_SECONDS * 1000),
      notAfter: wholeSeconds(
        now + positiveSeconds(options.rootTtlSeconds ?? DEFAULT_ROOT_TTL_SECONDS, 'rootTtlSeconds') * 1000,
      ),
      nameConstraints: options.nameConstraints ?? false,
    },
    signerOf(rootKeys.privateKey),
  );
  const rootKey = await encryptPrivateKey(rootKeys.privateKey, options.secret);
  const root: TrustedRoot = { certPem: rootPem, encryptedKey: rootKey, addedAt: new Date(now).toISOString() };
  if (!options.intermediate) {
    return { root, signing: { chainPem: [rootPem], encryptedKey: rootKey, origin: 'generated' } };
  }
  const intermediateKeys = await generateKeyPair(keyType);
  const intermediatePem = issueIntermediate(
    trustDomain,
    organization,
    readCertificate(rootPem, 'ca_certificate_invalid'),
    rootKeys.privateKey,
    intermediateKeys.publicKey,
    now,
    options.intermediateTtlSeconds ?? DEFAULT_INTERMEDIATE_TTL_SECONDS,
  );
  return {
    root,
    signing: {
      chainPem: [intermediatePem, rootPem],
      encryptedKey: await encryptPrivateKey(intermediateKeys.privateKey, options.secret),
      origin: 'generated',
    },
  };
}

/** A new self-signed authority (root, optionally an intermediate) for `trustDomain`. */
export async function createAuthority(options: CreateAuthorityOptions): Promise<AuthorityState> {
  const trustDomain = assertTrustDomain(options.trustDomain, 'authority_state_invalid');
  const { root, signing } = await generateCa(trustDomain, options);
  return { format: AUTHORITY_STATE_FORMAT, trustDomain, bundleSequence: 1, roots: [root], active: signing };
}

/** Reads `ca-cert.pem`, `ca-key.pem`, `root-cert.pem` and (if present) `cert-chain.pem` from an Istio `cacerts` directory. */
export async function readCacertsDirectory(dir: string): Promise<CacertsFiles> {
  const read = (name: string) => fs.readFile(path.join(dir, name), 'utf8');
  const [caCertPem, caKeyPem, rootCertPem, certChainPem] = await Promise.all([
    read('ca-cert.pem'),
    read('ca-key.pem'),
    read('root-cert.pem'),
    read('cert-chain.pem').catch((error: unknown) => {
      if (error instanceof Error && 'code' in error && error.code === 'ENOENT') return '';
      throw error;
    }),
  ]);
  return { caCertPem, caKeyPem, rootCertPem, certChainPem };
}

function certificatesOf(pem: string, file: string): CertificateInfo[] {
  let ders: Buffer[];
  try {
    ders = decodePemCertificates(pem);
  } catch (error) {
    throw new PkiError(
      'ca_certificate_invalid',
      `${file}: ${error instanceof Error ? error.message : 'bad PEM'}`,
      { cause: error },
    );
  }
  return ders.map((bytes) => readCertificate(bytes, 'ca_certificate_invalid'));
}

/** Validates cacerts files and returns the chain (signing CA first, root last), every root, and the key. */
function pluggedCa(files: CacertsFiles, now: number) {
  const [signing, ...extra] = certificatesOf(files.caCertPem, 'ca-cert.pem');
  if (signing === undefined || extra.length > 0) {
    throw new PkiError('ca_certificate_invalid', 'ca-cert.pem must hold exactly one certificate');
  }
  checkSigningCertificate(signing, now);
  const roots = certificatesOf(files.rootCertPem, 'root-cert.pem');
  if (roots.length === 0) throw new PkiError('ca_certificate_invalid', 'root-cert.pem holds no certificate');
  for (const root of roots) {
    if (!root.selfIssued || !root.isCa)
      throw new PkiError(
        'ca_certificate_invalid',
        'root-cert.pem holds a certificate that is not a self-signed CA',
      );
  }
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey({ key: files.caKeyPem, format: 'pem' });
  } catch (error) {
    throw new PkiError('ca_key_invalid', 'ca-key.pem is not an unencrypted PEM private key', {
      cause: error,
    });
  }
  // Build signing → … → root from whatever order cert-chain.pem uses, skipping repeats of ca-cert.
  const pool = certificatesOf(files.certChainPem ?? '', 'cert-chain.pem').filter(
    (c) => !c.der.equals(signing.der),
  );
  const chain = [signing];
  for (let current = signing; !current.selfIssued; ) {
    const parent = [...pool, ...roots].find(
      (c) => c.subjectDer.equals(current.issuerDer) && current.x509.verify(c.publicKey),
    );
    if (parent === undefined || chain.length > 8) {
      throw new PkiError(
        'ca_chain_invalid',
        'cert-chain.pem and root-cert.pem do not link ca-cert.pem to a root',
      );
    }
    chain.push(parent);
    current = parent;
  }
  const chainRoot = chain[chain.length - 1];
  if (chainRoot === undefined || !roots.some((root) => root.der.equals(chainRoot.der))) {
    throw new PkiError(
      'ca_chain_invalid',
      'the chain of ca-cert.pem ends at a root that is not in root-cert.pem',
    );
  }
  return { chainPem: chain.map((c) => c.pem), roots, key };
}

/**
 * An authority from Istio-style plugged-in certificates. The root keys stay wherever they are; only
 * the signing key is kept (encrypted). Validates that the key matches ca-cert and that the chain reaches a root.
 */
export async function importPluggedAuthority(options: {
  readonly trustDomain: string;
  readonly files: CacertsFiles;
  readonly secret: KeyEncryptionSecret;
  readonly now?: number;
}): Promise<AuthorityState> {
  const trustDomain = assertTrustDomain(options.trustDomain, 'authority_state_invalid');
  const now = options.now ?? Date.now();
  const { chainPem, roots, key } = pluggedCa(options.files, now);
  // Constructing an Issuer runs every check issuance relies on (key match, key type, chain signatures).
  new Issuer({ caChainPem: chainPem, signingKey: key, trustDomain, now: () => now });
  const addedAt = new Date(now).toISOString();
  return {
    format: AUTHORITY_STATE_FORMAT,
    trustDomain,
    bundleSequence: 1,
    roots: roots.map((root) => ({ certPem: root.pem, addedAt })),
    active: { chainPem, encryptedKey: await encryptPrivateKey(key, options.secret), origin: 'plugged' },
  };
}

/** Decrypts the active signing key and builds the Issuer. Throws `key_secret_mismatch` for a wrong secret. */
export async function openAuthority(
  state: AuthorityState,
  options: OpenAuthorityOptions,
): Promise<OpenedAuthority> {
  const checked = parseAuthorityState(state);
  const { secret, ...issuerOptions } = options;
  const signingKey = await decryptPrivateKey(checked.active.encryptedKey, secret);
  const issuer = new Issuer({
    ...issuerOptions,
    caChainPem: checked.active.chainPem,
    signingKey,
    trustDomain: checked.trustDomain,
  });
  return { state: checked, issuer, trustBundlePem: trustBundleOf(checked) };
}

/** The PEM roots peers must trust, oldest first. */
export function trustBundleOf(state: AuthorityState): string[] {
  return state.roots.map((root) => root.certPem);
}

function rootPemOf(signing: SigningAuthority): string {
  const root = signing.chainPem[signing.chainPem.length - 1];
  if (root === undefined)
    throw new PkiError('authority_state_invalid', 'a signing authority has an empty chain');
  return root;
}

/**
 * Phase one of a root rotation: a new root (and an intermediate, by default when the active CA has one)
 * is added to the bundle but signs nothing, so peers can learn it before they meet a certificate under it.
 */
export async function prepareRootRotation(
  state: AuthorityState,
  options: GeneratedCaOptions,
): Promise<AuthorityState> {
  const current = parseAuthorityState(state);
  if (current.prepared !== undefined) {
    throw new PkiError('rotation_in_progress', 'a root rotation is already prepared; activate it first');
  }
  const { root, signing } = await generateCa(current.trustDomain, {
    ...options,
    intermediate: options.intermediate ?? current.active.chainPem.length > 1,
  });
  return {
    ...current,
    bundleSequence: current.bundleSequence + 1,
    roots: [...current.roots, root],
    prepared: signing,
  };
}

/**
 * Phase two: the prepared CA signs from now on; the old root stays in the bundle until `overlapSeconds`
 * from now, which should exceed the longest lifetime of a leaf issued under it.
 */
export function activatePreparedRoot(
  state: AuthorityState,
  options: { readonly overlapSeconds?: number; readonly now?: number } = {},
): AuthorityState {
  const current = parseAuthorityState(state);
  const { prepared } = current;
  if (prepared === undefined)
    throw new PkiError('rotation_not_prepared', 'no root rotation has been prepared');
  const now = options.now ?? Date.now();
  const retireAt = new Date(
    now + positiveSeconds(options.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS, 'overlapSeconds') * 1000,
  ).toISOString();
  const oldRoot = rootPemOf(current.active);
  const newRoot = rootPemOf(prepared);
  const roots = current.roots.map((root) =>
    root.certPem === oldRoot && root.certPem !== newRoot && root.retireAt === undefined
      ? { ...root, retireAt }
      : root,
  );
  const { prepared: _, ...rest } = current;
  return { ...rest, roots, active: prepared };
}

/** Both phases at once: for when every peer refreshes its bundle with its certificate anyway. */
export async function rotateRoot(
  state: AuthorityState,
  options: Parameters<typeof prepareRootRotation>[1] & { readonly overlapSeconds?: number },
): Promise<AuthorityState> {
  const prepared = await prepareRootRotation(state, options);
  return activatePreparedRoot(prepared, options);
}

/**
 * Switches to new plugged-in cacerts: the new roots join the bundle, the roots no longer in root-cert.pem
 * stay for `overlapSeconds`. With the same root (a new intermediate only), the bundle does not change.
 */
export async function rotateToPluggedAuthority(
  state: AuthorityState,
  options: {
    readonly files: CacertsFiles;
    readonly secret: KeyEncryptionSecret;
    readonly overlapSeconds?: number;
    readonly now?: number;
  },
): Promise<AuthorityState> {
  const current = parseAuthorityState(state);
  if (current.prepared !== undefined) {
    throw new PkiError(
      'rotation_in_progress',
      'a root rotation is prepared; activate it before plugging in cacerts',
    );
  }
  const now = options.now ?? Date.now();
  const imported = await importPluggedAuthority({
    trustDomain: current.trustDomain,
    files: options.files,
    secret: options.secret,
    now,
  });
  const retireAt = new Date(
    now + positiveSeconds(options.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS, 'overlapSeconds') * 1000,
  ).toISOString();
  const incoming = new Set(imported.roots.map((root) => root.certPem));
  const kept = current.roots.map((root) =>
    incoming.has(root.certPem) || root.retireAt !== undefined ? root : { ...root, retireAt },
  );
  const known = new Set(current.roots.map((root) => root.certPem));
  const added = imported.roots.filter((root) => !known.has(root.certPem));
  return {
    ...current,
    // Marking a root for retirement leaves the bundle's content unchanged; only additions bump the sequence.
    bundleSequence: current.bundleSequence + (added.length > 0 ? 1 : 0),
    roots: [...kept, ...added],
    active: imported.active,
  };
}

/** Drops roots whose overlap ended; the active and prepared roots are never dropped. */
export function pruneRetiredRoots(state: AuthorityState, now = Date.now()): AuthorityState {
  const current = parseAuthorityState(state);
  const inUse = new Set([
    rootPemOf(current.active),
    ...(current.prepared ? [rootPemOf(current.prepared)] : []),
  ]);
  const roots = current.roots.filter(
    (root) => inUse.has(root.certPem) || root.retireAt === undefined || Date.parse(root.retireAt) > now,
  );
  if (roots.length === current.roots.length) return current;
  return { ...current, roots, bundleSequence: current.bundleSequence + 1 };
}

/** A new intermediate (new key) under the active generated root; the bundle does not change. */
export async function renewIntermediate(
  state: AuthorityState,
  options: {
    readonly secret: KeyEncryptionSecret;
    readonly ttlSeconds?: number;
    readonly keyType?: KeyType;
    readonly organization?: string;
    readonly now?: number;
  },
): Promise<AuthorityState> {
  const current = parseAuthorityState(state);
  const rootPem = rootPemOf(current.active);
  const rootEntry = current.roots.find((root) => root.certPem === rootPem);
  if (current.active.chainPem.length < 2 || rootEntry?.encryptedKey === undefined) {
    throw new PkiError(
      'authority_state_invalid',
      'the active CA has no intermediate, or its root key is not held here',
    );
  }
  const now = options.now ?? Date.now();
  const rootKey = await decryptPrivateKey(rootEntry.encryptedKey, options.secret);
  const root = readCertificate(rootPem, 'ca_certificate_invalid');
  const keys = await generateKeyPair(
    options.keyType ?? (rootKey.asymmetricKeyType === 'ec' ? 'ec-p256' : 'rsa-2048'),
  );
  const intermediatePem = issueIntermediate(
    current.trustDomain,
    options.organization ?? current.trustDomain,
    root,
    rootKey,
    keys.publicKey,
    now,
    options.ttlSeconds ?? DEFAULT_INTERMEDIATE_TTL_SECONDS,
  );
  return {
    ...current,
    active: {
      chainPem: [intermediatePem, rootPem],
      encryptedKey: await encryptPrivateKey(keys.privateKey, options.secret),
      origin: 'generated',
    },
  };
}

/** The same state with every private key re-encrypted under `newSecret` (for rotating the secret itself). */
export async function reencryptAuthorityState(
  state: AuthorityState,
  oldSecret: KeyEncryptionSecret,
  newSecret: KeyEncryptionSecret,
): Promise<AuthorityState> {
  const current = parseAuthorityState(state);
  const reencrypt = async (key: EncryptedKey) =>
    encryptPrivateKey(await decryptPrivateKey(key, oldSecret), newSecret);
  const signing = async (s: SigningAuthority): Promise<SigningAuthority> => ({
    ...s,
    encryptedKey: await reencrypt(s.encryptedKey),
  });
  const roots = await Promise.all(
    current.roots.map(async (root) =>
      root.encryptedKey ? { ...root, encryptedKey: await reencrypt(root.encryptedKey) } : root,
    ),
  );
  return {
    ...current,
    roots,
    active: await signing(current.active),
    ...(current.prepared ? { prepared: await signing(current.prepared) } : {}),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(why: string): PkiError {
  return new PkiError('authority_state_invalid', `the authority state is invalid: ${why}`);
}

function parseSigning(value: unknown, name: string): SigningAuthority {
  if (!isRecord(value)) throw invalid(`${name} is not an object`);
  const { chainPem, encryptedKey, origin } = value;
  if (
    !Array.isArray(chainPem) ||
    chainPem.length === 0 ||
    !chainPem.every((pem) => typeof pem === 'string')
  ) {
    throw invalid(`${name}.chainPem is not a non-empty list of PEM strings`);
  }
  if (origin !== 'generated' && origin !== 'plugged')
    throw invalid(`${name}.origin is not "generated" or "plugged"`);
  return { chainPem: chainPem.map(String), encryptedKey: parseEncryptedKey(encryptedKey), origin };
}

/** Narrows stored JSON (for example a Postgres jsonb column) to an AuthorityState this version understands. */
export function parseAuthorityState(value: unknown): AuthorityState {
  if (!isRecord(value)) throw invalid('not an object');
  if (value.format !== AUTHORITY_STATE_FORMAT) throw invalid(`format is not "${AUTHORITY_STATE_FORMAT}"`);
  if (typeof value.trustDomain !== 'string') throw invalid('trustDomain is not a string');
  const trustDomain = assertTrustDomain(value.trustDomain, 'authority_state_invalid');
  if (!Number.isInteger(value.bundleSequence) || Number(value.bundleSequence) < 1)
    throw invalid('bundleSequence is not a positive integer');
  if (!Array.isArray(value.roots) || value.roots.length === 0) throw invalid('roots is not a non-empty list');
  const roots = value.roots.map((root: unknown, i): TrustedRoot => {
    if (!isRecord(root) || typeof root.certPem !== 'string' || typeof root.addedAt !== 'string') {
      throw invalid(`roots[${i}] needs certPem and addedAt`);
    }
    if (
      root.retireAt !== undefined &&
      (typeof root.retireAt !== 'string' || Number.isNaN(Date.parse(root.retireAt)))
    ) {
      throw invalid(`roots[${i}].retireAt is not a date`);
    }
    return {
      certPem: root.certPem,
      addedAt: root.addedAt,
      ...(root.encryptedKey === undefined ? {} : { encryptedKey: parseEncryptedKey(root.encryptedKey) }),
      ...(typeof root.retireAt === 'string' ? { retireAt: root.retireAt } : {}),
    };
  });
  const active = parseSigning(value.active, 'active');
  const prepared = value.prepared === undefined ? undefined : parseSigning(value.prepared, 'prepared');
  const bundle = new Set(roots.map((root) => root.certPem));
  for (const signing of [active, ...(prepared ? [prepared] : [])]) {
    if (!bundle.has(rootPemOf(signing))) throw invalid('a signing authority’s root is not in roots');
  }
  return {
    format: AUTHORITY_STATE_FORMAT,
    trustDomain,
    bundleSequence: Number(value.bundleSequence),
    roots,
    active,
    ...(prepared ? { prepared } : {}),
  };
}

export interface ServingCertificateOptions extends ServerNames {
  readonly secret: KeyEncryptionSecret;
  /** The serving key's public half (RSA or P-256). */
  readonly publicKey: KeyObject;
  readonly ttlSeconds: number;
  /** Milliseconds since the epoch. */
  readonly now?: number;
}

export interface ServingCertificate {
  /** Leaf first, the root last. */
  readonly chainPem: string[];
  readonly notAfter: Date;
  /** Which CA signed it: the oldest held root, or the active signing CA when no root key is held. */
  readonly signedBy: 'root' | 'active';
}

/**
 * The CA's own TLS server certificate. It is not an SVID: serverAuth only, and DNS and IP names beside
 * its URI, so clients that check a hostname (Istio agents) and clients that check a SPIFFE ID both accept
 * it, while no workload check mistakes it for a workload (`identityFromPeerCertificate` refuses extra SANs,
 * and without clientAuth it cannot authenticate as a client).
 *
 * It is signed by the oldest root of the bundle whose key is held here: every client holding any bundle
 * published since the previous rotation trusts that root, so during a rotation's overlap the CA stays
 * reachable by clients that come to fetch the new bundle or renew. With no root key held (plugged-in
 * cacerts), the active signing CA signs it.
 */
export async function issueServingCertificate(
  state: AuthorityState,
  options: ServingCertificateOptions,
): Promise<ServingCertificate> {
  const current = parseAuthorityState(state);
  const now = options.now ?? Date.now();
  const heldRoot = current.roots.find((root) => {
    if (root.encryptedKey === undefined) return false;
    if (root.retireAt !== undefined && Date.parse(root.retireAt) <= now) return false;
    const cert = readCertificate(root.certPem, 'ca_certificate_invalid');
    // A root about to expire would cut the serving certificate short; the next one does better.
    return cert.notAfter.getTime() > now + options.ttlSeconds * 1000;
  });
  const signedBy = heldRoot?.encryptedKey === undefined ? 'active' : 'root';
  const signingKey = await decryptPrivateKey(
    heldRoot?.encryptedKey ?? current.active.encryptedKey,
    options.secret,
  );
  const caChain = heldRoot === undefined ? [...current.active.chainPem] : [heldRoot.certPem];
  const signing = readCertificate(caChain[0] ?? '', 'ca_certificate_invalid');
  checkSigningCertificate(signing, now);
  const signer = signerOf(signingKey);
  const spki = spkiDer(options.publicKey);
  const rsa = options.publicKey.asymmetricKeyType === 'rsa';
  const notAfter = wholeSeconds(
    Math.min(now + positiveSeconds(options.ttlSeconds, 'ttlSeconds') * 1000, signing.notAfter.getTime()),
  );
  const tbs = buildTbsCertificate({
    serial: randomSerial(),
    signatureAlgorithm: der.preEncoded(signer.algorithmIdentifierDer),
    issuer: der.preEncoded(signing.subjectDer),
    notBefore: wholeSeconds(now - BACKDATE_SECONDS * 1000),
    notAfter,
    subject: der.preEncoded(
      encodeName({
        organization: current.trustDomain,
        commonName: options.dnsNames?.[0] ?? 'portcullis-ca',
      }),
    ),
    subjectPublicKeyInfo: der.preEncoded(spki),
    extensions: [
      basicConstraintsExtension(false),
      keyUsageExtension(rsa ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature']),
      extendedKeyUsageExtension([OID.serverAuth]),
      subjectKeyIdentifierExtension(keyIdentifier(spki)),
      authorityKeyIdentifierExtension(signing.subjectKeyId ?? keyIdentifier(signing.spkiDer)),
      serverSubjectAltNameExtension(options, false),
    ],
  });
  const leafPem = encodePem(signCertificate(tbs, signer), 'CERTIFICATE');
  return { chainPem: [leafPem, ...caChain], notAfter, signedBy };
}
