// OPA's io.jwt.* verification and decoding builtins (JWS compact tokens; keys as PEM, JWK or JWKS).
import {
  createHmac,
  createPublicKey,
  createSecretKey,
  verify as cryptoVerify,
  type JsonWebKey,
  type KeyObject,
  constants as rsa,
  timingSafeEqual,
  X509Certificate,
} from 'node:crypto';
import { parseValue } from '../rego-json.ts';
import { BuiltinError, type BuiltinTable, type EvalContext, isObject, nowNs, str } from './builtin-types.ts';

// ---------------------------------------------------------------------------------------------------------
// Token structure.

interface Token {
  header: string;
  payload: string;
  signature: string;
}

function splitToken(v: unknown): Token {
  const s = str(v, 1);
  if (!s.includes('.')) throw new BuiltinError('encoded JWT had no period separators');
  const parts = s.split('.');
  if (parts.length !== 3) throw new BuiltinError(`encoded JWT must have 3 sections, found ${parts.length}`);
  return { header: parts[0]!, payload: parts[1]!, signature: parts[2]! };
}

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** OPA's base64url.decode: padding optional (RFC 7515 appendix C), otherwise Go's strict URL alphabet. */
export function base64UrlDecode(input: string): Buffer {
  let s = input.replace(/[\r\n]/g, '');
  if (!s.endsWith('=')) {
    const rem = s.length % 4;
    if (rem === 1) throw new BuiltinError(`illegal base64url string: ${input}`);
    if (rem === 2) s += '==';
    else if (rem === 3) s += '=';
  }
  if (s.length % 4 !== 0 || !B64URL.test(s)) throw new BuiltinError('illegal base64 data');
  return Buffer.from(s, 'base64url');
}

function jsonObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseValue(text);
  } catch {
    throw new BuiltinError(`${what}: invalid JSON`);
  }
  if (!isObject(v)) throw new BuiltinError(`${what}: decoded JSON type was not an Object`);
  return v;
}

function decodeHeader(t: Token): Record<string, unknown> {
  const header = jsonObject(base64UrlDecode(t.header).toString('utf8'), 'bad JWT header');
  if ('enc' in header) throw new BuiltinError('JWT is a JWE object, which is not supported');
  return header;
}

interface HeaderFields {
  alg: string;
  kid: string;
  cty: string;
  valid: boolean;
}

/** OPA's parseTokenHeader + valid(): typed known fields, and `crit` naming only understood parameters. */
function headerFields(header: Record<string, unknown>): HeaderFields {
  const out = { alg: '', kid: '', typ: '', cty: '' };
  let crit: Set<string> | undefined;
  const unknown: string[] = [];
  for (const [k, v] of Object.entries(header)) {
    if (k === 'alg' || k === 'kid' || k === 'typ' || k === 'cty') {
      if (typeof v !== 'string') throw new BuiltinError(`${k}: must be a string`);
      out[k] = v;
    } else if (k === 'crit') {
      if (!Array.isArray(v)) throw new BuiltinError('crit: must be a list');
      crit = new Set();
      for (const e of v) {
        if (typeof e !== 'string') break;
        crit.add(e);
      }
      if (crit.size === 0) throw new BuiltinError('crit: must be a nonempty list');
    } else unknown.push(k);
  }
  const valid = out.alg !== '' && !unknown.some((u) => crit?.has(u));
  return { alg: out.alg, kid: out.kid, cty: out.cty, valid };
}

// ---------------------------------------------------------------------------------------------------------
// Keys.

const TOKEN_ALGS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'EdDSA',
]);

interface VerificationKey {
  key: KeyObject;
  alg: string;
  kid: string;
}

const PEM_BLOCK = /(?:^|\n)-----BEGIN ([^\n]*?)-----[ \t]*\r?\n([\s\S]*?)-----END \1-----[ \t]*(?:\r?\n|$)/;

// Parsing a key costs tens of microseconds; policies pass the same few key strings on every request.
const keyCache = new Map<string, VerificationKey[]>();

/** OPA's getKeysFromCertOrJWK: one PEM certificate or public key, else a JWK or JWK set. */
export function keysFrom(material: string): VerificationKey[] {
  const cached = keyCache.get(material);
  if (cached !== undefined) return cached;
  const keys = parseKeys(material);
  if (keyCache.size >= 256) keyCache.clear();
  keyCache.set(material, keys);
  return keys;
}

function parseKeys(material: string): VerificationKey[] {
  const m = PEM_BLOCK.exec(material);
  if (m !== null) {
    if (m.index + m[0].length < material.length)
      throw new BuiltinError('extra data after a PEM certificate block');
    const body = Buffer.from(m[2]!.replace(/^[\w-]+:.*$/gm, '').replace(/\s+/g, ''), 'base64');
    try {
      if (m[1] === 'CERTIFICATE') return [{ key: new X509Certificate(body).publicKey, alg: '', kid: '' }];
      if (m[1] === 'PUBLIC KEY')
        return [{ key: createPublicKey({ key: body, format: 'der', type: 'spki' }), alg: '', kid: '' }];
    } catch (err) {
      throw new BuiltinError(
        `failed to parse a PEM ${m[1] === 'CERTIFICATE' ? 'certificate' : 'public key'}: ${(err as Error).message}`,
      );
    }
    throw new BuiltinError('failed to extract a Key from the PEM certificate');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(material);
  } catch {
    throw new BuiltinError('failed to parse a JWK key (set)');
  }
  if (!isObject(parsed)) throw new BuiltinError('failed to parse a JWK key (set)');
  const list = Array.isArray(parsed['keys'])
    ? (parsed['keys'] as unknown[])
    : 'keys' in parsed
      ? undefined
      : [parsed];
  if (list === undefined) throw new BuiltinError('failed to parse a JWK key (set)');
  const keys: VerificationKey[] = [];
  for (const jwk of list) {
    if (!isObject(jwk)) throw new BuiltinError('failed to parse a JWK key (set)');
    const key = importJwk(jwk);
    const alg = typeof jwk['alg'] === 'string' ? jwk['alg'] : '';
    if (alg !== '' && !TOKEN_ALGS.has(alg)) continue;
    keys.push({ key, alg, kid: typeof jwk['kid'] === 'string' ? jwk['kid'] : '' });
  }
  return keys;
}

function importJwk(jwk: Record<string, unknown>): KeyObject {
  try {
    if (jwk['kty'] === 'oct') {
      if (typeof jwk['k'] !== 'string') throw new Error('missing k');
      return createSecretKey(base64UrlDecode(jwk['k']));
    }
    return createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw new BuiltinError(`failed to parse a JWK key (set): ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Signature checks. Each returns whether the signature verifies; a wrong key type is simply `false`.

type Hash = 'sha256' | 'sha384' | 'sha512';
type Verifier = (key: KeyObject, data: Buffer, sig: Buffer) => boolean;

const rsaPkcs1 =
  (hash: Hash): Verifier =>
  (key, data, sig) =>
    key.asymmetricKeyType === 'rsa' && safeVerify(hash, data, { key, padding: rsa.RSA_PKCS1_PADDING }, sig);

// Go's rsa.VerifyPSS with nil options detects the salt length, as RSA_PSS_SALTLEN_AUTO does.
const rsaPss =
  (hash: Hash): Verifier =>
  (key, data, sig) =>
    key.asymmetricKeyType === 'rsa' &&
    safeVerify(
      hash,
      data,
      { key, padding: rsa.RSA_PKCS1_PSS_PADDING, saltLength: rsa.RSA_PSS_SALTLEN_AUTO },
      sig,
    );

// OPA splits the signature in two halves (r, s) whatever its length, as Go's ecdsa.Verify takes big ints.
const ecdsa =
  (hash: Hash): Verifier =>
  (key, data, sig) => {
    if (key.asymmetricKeyType !== 'ec') return false;
    const n = sig.length >> 1;
    const der = derSignature(sig.subarray(0, n), sig.subarray(n));
    return der !== undefined && safeVerify(hash, data, { key, dsaEncoding: 'der' }, der);
  };

const eddsa: Verifier = (key, data, sig) =>
  key.asymmetricKeyType === 'ed25519' && safeVerify(null, data, key, sig);

const hmac =
  (hash: Hash): Verifier =>
  (key, data, sig) => {
    if (key.type !== 'secret') return false;
    const mac = createHmac(hash, key).update(data).digest();
    return mac.length === sig.length && timingSafeEqual(mac, sig);
  };

function safeVerify(
  hash: Hash | null,
  data: Buffer,
  key: Parameters<typeof cryptoVerify>[2],
  sig: Buffer,
): boolean {
  try {
    return cryptoVerify(hash, data, key, sig);
  } catch {
    return false;
  }
}

function derInteger(b: Buffer): Buffer | undefined {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  if (i === b.length) return undefined; // zero is never a valid r or s
  const body = b.subarray(i);
  const padded = body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body;
  return Buffer.concat([Buffer.from([0x02]), derLength(padded.length), padded]);
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  return n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
}

function derSignature(r: Buffer, s: Buffer): Buffer | undefined {
  const ri = derInteger(r);
  const si = derInteger(s);
  if (ri === undefined || si === undefined) return undefined;
  const body = Buffer.concat([ri, si]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

/** What jwx's jwsbb.Verify dispatches on: the header's `alg`. */
const BY_ALG: Record<string, Verifier> = {
  RS256: rsaPkcs1('sha256'),
  RS384: rsaPkcs1('sha384'),
  RS512: rsaPkcs1('sha512'),
  PS256: rsaPss('sha256'),
  PS384: rsaPss('sha384'),
  PS512: rsaPss('sha512'),
  ES256: ecdsa('sha256'),
  ES384: ecdsa('sha384'),
  ES512: ecdsa('sha512'),
  HS256: hmac('sha256'),
  HS384: hmac('sha384'),
  HS512: hmac('sha512'),
  EdDSA: eddsa,
};

function signingInput(t: Token): Buffer {
  return Buffer.from(`${t.header}.${t.payload}`, 'utf8');
}

/** OPA's builtinJWTVerify: the key whose kid matches the header, else any key (with a matching alg). */
function verifyWithKeys(jwt: unknown, material: unknown, verify: Verifier): boolean {
  const token = splitToken(jwt);
  const keys = keysFrom(str(material, 2));
  const sig = base64UrlDecode(token.signature);
  const header = headerFields(decodeHeader(token));
  const data = signingInput(token);
  if (header.kid !== '') {
    const byKid = keys.find((k) => k.kid === header.kid);
    if (byKid !== undefined) return verify(byKid.key, data, sig);
  }
  for (const k of keys) {
    if (k.alg !== '' && k.alg !== header.alg) continue;
    if (verify(k.key, data, sig)) return true;
  }
  return false;
}

function verifyHs(hash: Hash): (args: readonly unknown[]) => boolean {
  return ([jwt, secret]) => {
    const s = str(jwt, 1);
    const key = str(secret, 2);
    const token = splitToken(s);
    const mac = createHmac(hash, key).update(signingInput(token)).digest();
    const sig = base64UrlDecode(token.signature);
    return mac.length === sig.length && timingSafeEqual(mac, sig);
  };
}

// ---------------------------------------------------------------------------------------------------------
// decode and decode_verify.

function decode(jwt: unknown): [Record<string, unknown>, Record<string, unknown>, string] {
  const token = splitToken(jwt);
  const header = decodeHeader(token);
  let payload = base64UrlDecode(token.payload).toString('utf8');
  if (header['cty'] === 'JWT') {
    // A nested token's payload is the inner token, sometimes quoted (jwt.io does this).
    payload = payload.replace(/^["']+|["']+$/g, '');
    return decode(payload);
  }
  const claims = jsonObject(payload, 'invalid JWT payload');
  const sig = base64UrlDecode(token.signature).toString('hex');
  return [header, claims, sig];
}

interface Constraints {
  keys: VerificationKey[] | undefined;
  secret: string;
  alg: string;
  iss: string;
  aud: string;
  time: number;
}

function constraintsOf(v: unknown, ctx: EvalContext): Constraints {
  if (!isObject(v)) throw new BuiltinError('operand 2 must be object');
  const c: Constraints = { keys: undefined, secret: '', alg: '', iss: '', aud: '', time: -1 };
  for (const [name, value] of Object.entries(v)) {
    switch (name) {
      case 'cert':
        if (typeof value !== 'string') throw new BuiltinError('cert constraint: must be a string');
        c.keys = keysFrom(value);
        break;
      case 'secret':
      case 'alg':
      case 'iss':
      case 'aud':
        if (typeof value !== 'string') throw new BuiltinError(`${name} constraint: must be a string`);
        c[name] = value;
        break;
      case 'time':
        c.time = timeConstraint(value);
        break;
      default:
        throw new BuiltinError(`unknown token validation constraint: ${name}`);
    }
  }
  if (c.time === -1) c.time = Number(nowNs(ctx));
  const keyed = (c.keys !== undefined ? 1 : 0) + (c.secret !== '' ? 1 : 0);
  if (keyed > 1) throw new BuiltinError('duplicate key constraints');
  if (keyed < 1) throw new BuiltinError('no key constraint');
  return c;
}

function timeConstraint(v: unknown): number {
  if (typeof v !== 'number' && typeof v !== 'bigint')
    throw new BuiltinError('token time constraint: must be a number');
  const t = Number(v);
  if (t < 0) throw new BuiltinError('token time constraint: must not be negative');
  return t;
}

function signatureVerifies(c: Constraints, header: HeaderFields, data: Buffer, sig: Buffer): boolean {
  const verify = BY_ALG[header.alg];
  if (verify === undefined) return false;
  if (c.keys !== undefined) {
    if (header.kid !== '') {
      const byKid = c.keys.find((k) => k.kid === header.kid);
      if (byKid !== undefined) return verify(byKid.key, data, sig);
    }
    return c.keys.some((k) => (k.alg === '' || k.alg === header.alg) && verify(k.key, data, sig));
  }
  return verify(createSecretKey(Buffer.from(c.secret, 'utf8')), data, sig);
}

const UNVERIFIED = (): [boolean, Record<string, never>, Record<string, never>] => [false, {}, {}];

function numberOf(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  throw new BuiltinError(`${what} value must be a number`);
}

function decodeVerify(jwt: unknown, constraints: unknown, ctx: EvalContext): unknown {
  const c = constraintsOf(constraints, ctx);
  let current: unknown = jwt;
  let token: Token;
  let rawHeader: Record<string, unknown>;
  let payloadText: string;
  for (;;) {
    token = splitToken(current);
    rawHeader = decodeHeader(token);
    const header = headerFields(rawHeader);
    if (!header.valid) return UNVERIFIED();
    if (c.alg !== '' && c.alg !== header.alg) return UNVERIFIED();
    const sig = base64UrlDecode(token.signature);
    if (!signatureVerifies(c, header, signingInput(token), sig)) return UNVERIFIED();
    payloadText = base64UrlDecode(token.payload).toString('utf8');
    if (header.cty.toUpperCase() !== 'JWT') break;
    current = payloadText;
  }
  const payload = jsonObject(payloadText, 'invalid JWT payload');
  if (c.iss !== '' && payload['iss'] !== c.iss) return UNVERIFIED();
  if ('aud' in payload) {
    const aud = payload['aud'];
    const ok = typeof aud === 'string' ? aud === c.aud : Array.isArray(aud) && aud.some((a) => a === c.aud);
    if (!ok) return UNVERIFIED();
  } else if (c.aud !== '') return UNVERIFIED();
  const nowSeconds = c.time / 1e9;
  if ('exp' in payload && !(nowSeconds < numberOf(payload['exp'], 'exp'))) return UNVERIFIED();
  if ('nbf' in payload && nowSeconds < numberOf(payload['nbf'], 'nbf')) return UNVERIFIED();
  return [true, rawHeader, payload];
}

export const jwtBuiltins: BuiltinTable = {
  'io.jwt.decode': { pure: true, fn: ([jwt]) => decode(jwt) },
  'io.jwt.decode_verify': { fn: ([jwt, constraints], ctx) => decodeVerify(jwt, constraints, ctx) },
  'io.jwt.verify_rs256': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['RS256']!) },
  'io.jwt.verify_rs384': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['RS384']!) },
  'io.jwt.verify_rs512': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['RS512']!) },
  'io.jwt.verify_ps256': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['PS256']!) },
  'io.jwt.verify_ps384': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['PS384']!) },
  'io.jwt.verify_ps512': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['PS512']!) },
  'io.jwt.verify_es256': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['ES256']!) },
  'io.jwt.verify_es384': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['ES384']!) },
  'io.jwt.verify_es512': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, BY_ALG['ES512']!) },
  'io.jwt.verify_eddsa': { pure: true, fn: ([jwt, key]) => verifyWithKeys(jwt, key, eddsa) },
  'io.jwt.verify_hs256': { pure: true, fn: verifyHs('sha256') },
  'io.jwt.verify_hs384': { pure: true, fn: verifyHs('sha384') },
  'io.jwt.verify_hs512': { pure: true, fn: verifyHs('sha512') },
};
