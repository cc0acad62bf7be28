// Every setting of the CA, declared once: environment name, type, default and meaning.
import { DEFAULT_DEVELOPMENT_ISSUER, DEFAULT_MAX_CSR_BYTES } from '@portcullis/pki';
import { ConfigError, type ConfigOf, env, loadConfig, type Setting } from '@portcullis/runtime';

const DAY_MS = 86_400_000;

/** A secret that must be long enough to be worth having; the message never shows the value. */
function secret(doc: string, opts: { required: boolean }): Setting<string | undefined> {
  return {
    doc,
    default: undefined,
    required: opts.required,
    defaultDoc: opts.required ? '(required)' : '(unset)',
    parse: (raw: string): string => {
      if (Buffer.byteLength(raw) < 16) throw new Error(`must be at least 16 bytes long, got ${raw.length}`);
      return raw;
    },
  };
}

export const CA_CONFIG = {
  CA_HTTP_PORT: env.port({
    default: 8383,
    doc: 'CA HTTP: `/v1/trust-bundle`, management calls, /metrics, /healthz, /readyz.',
  }),
  CA_GRPC_PORT: env.port({
    default: 15012,
    doc: 'CA gRPC: Istio `IstioCertificateService/CreateCertificate` and `portcullis.ca.v1.TrustBundle`.',
  }),
  CA_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address the CA binds both ports to (`0.0.0.0` in containers).',
  }),
  DATABASE_URL: env.url({
    doc: 'Postgres connection URL: the authority (keys encrypted), issuance records and audit.',
  }),
  CA_DB_POOL_MAX: env.int({ default: 10, min: 1, max: 1000, doc: 'Largest number of Postgres connections.' }),
  CA_TRUST_DOMAIN: env.string({
    default: 'cluster.local',
    doc: 'SPIFFE trust domain: certificates are issued for `spiffe://<domain>/ns/<ns>/sa/<sa>` only.',
  }),
  CA_KEY_ENCRYPTION_KEY: secret(
    'Secret (16 bytes or more) that encrypts the CA private keys at rest (AES-256-GCM under scrypt). `npm start` generates one into `.portcullis/ca-key-encryption-key`.',
    { required: true },
  ),
  CA_SIGNING_KEY_TYPE: env.oneOf(['ec-p256', 'rsa-2048'] as const, {
    default: 'ec-p256',
    doc: 'Key type of a generated root (and intermediate), used when the CA first starts and at each root rotation.',
  }),
  CA_INTERMEDIATE: env.bool({
    default: false,
    doc: 'Sign workload certificates with an intermediate under the generated root instead of the root itself (Istio signs with the root).',
  }),
  CA_CERTS_DIR: env.optionalString({
    doc: "A plugged-in CA like Istio's `cacerts`: `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`. Used on first start, and switched to (old roots kept for the overlap) when its `ca-cert.pem` changes.",
  }),
  CA_DEFAULT_TTL: env.duration({
    default: DAY_MS,
    defaultDoc: '`24h`',
    doc: 'Lifetime of a workload certificate when the request asks for none (`validity_duration` 0).',
  }),
  CA_MAX_TTL: env.duration({
    default: 90 * DAY_MS,
    defaultDoc: '`90d`',
    doc: 'Longest lifetime a request may ask for; longer requests are refused (Istio: 90 days).',
  }),
  CA_ROOT_TTL: env.duration({
    default: 3650 * DAY_MS,
    defaultDoc: '`3650d`',
    doc: 'Lifetime of a generated root.',
  }),
  CA_ROTATION_OVERLAP: env.duration({
    default: 2 * DAY_MS,
    defaultDoc: '`48h`',
    doc: 'After a root rotation the old root stays trusted this long; keep it above CA_MAX_TTL of the certificates actually issued (renewal happens at half their lifetime).',
  }),
  CA_ROOT_ROTATE_BEFORE: env.duration({
    default: 0,
    defaultDoc: '`0` (off)',
    doc: 'Rotate a generated root automatically once it has less than this left to live (for example `365d`). 0 turns the schedule off; rotation through the API still works.',
  }),
  CA_MAINTENANCE_INTERVAL: env.duration({
    default: 30_000,
    defaultDoc: '`30s`',
    doc: 'How often a CA re-reads the shared authority (a rotation made by another replica), prunes roots whose overlap ended and checks the rotation schedule.',
  }),
  CA_BUNDLE_REFRESH_HINT: env.duration({
    default: 300_000,
    defaultDoc: '`5m`',
    doc: 'The SPIFFE bundle `spiffe_refresh_hint`: how often consumers should fetch the trust bundle again.',
  }),
  CA_BOOTSTRAP_ISSUER: env.string({
    default: DEFAULT_DEVELOPMENT_ISSUER,
    doc: 'The `iss` that bootstrap tokens must carry (a cluster’s service-account issuer, or the development issuer of `npm start`).',
  }),
  CA_BOOTSTRAP_AUDIENCE: env.list({
    default: ['istio-ca'],
    defaultDoc: '`istio-ca`',
    doc: 'Audiences a bootstrap token may name (Istio agents ask for `istio-ca` tokens); comma-separated.',
  }),
  CA_BOOTSTRAP_JWKS_FILE: env.optionalString({
    doc: 'A JWKS file with the public keys of the bootstrap token issuer (`npm start` writes `.portcullis/ca-dev-issuer.jwks.json`). Without it and CA_BOOTSTRAP_JWKS_URL only mutual-TLS renewals are accepted.',
  }),
  CA_BOOTSTRAP_JWKS_URL: {
    ...env.optionalString({
      doc: 'A JWKS URL of the bootstrap token issuer (a cluster’s `/openid/v1/jwks`), fetched and cached; instead of CA_BOOTSTRAP_JWKS_FILE.',
    }),
    parse: (raw: string): string => {
      if (!/^https?:\/\//.test(raw)) throw new Error(`expected an http(s) URL, got ${JSON.stringify(raw)}`);
      return raw;
    },
  },
  CA_MAX_CSR_BYTES: env.bytes({
    default: DEFAULT_MAX_CSR_BYTES,
    defaultDoc: '`64KiB`',
    doc: 'Largest accepted CSR; a larger gRPC message is refused before it is read.',
  }),
  CA_SIGNING_THREADS: env.int({
    default: 0,
    min: -1,
    max: 64,
    defaultDoc: '0 (one per CPU but one, at least 1, at most 4)',
    doc: 'Threads that validate CSRs and sign, so the event loop keeps serving gRPC meanwhile; `-1` signs on the event loop (one CPU).',
  }),
  CA_GRPC_TLS: env.bool({
    default: true,
    doc: 'Serve gRPC over TLS with a certificate from this CA (and accept client certificates for renewal). `false` serves plaintext, bootstrap tokens only, for a one-machine stack.',
  }),
  CA_SERVING_HOSTS: env.list({
    default: ['localhost', '127.0.0.1', '::1'],
    defaultDoc: '`localhost,127.0.0.1,::1`',
    doc: 'DNS names and IP addresses in the CA’s own serving certificate, for clients that check a host name (add the service name in a cluster).',
  }),
  CA_ADMIN_TOKEN: secret(
    'Bearer token for the management calls (root rotation). Unset: those calls are refused.',
    { required: false },
  ),
};

export type CaConfig = ConfigOf<typeof CA_CONFIG>;

/** Reads and validates the CA's settings; throws ConfigError naming the first bad variable. */
export function loadCaConfig(source: NodeJS.ProcessEnv = process.env): CaConfig {
  const config = loadConfig(CA_CONFIG, source);
  for (const name of ['CA_DEFAULT_TTL', 'CA_MAX_TTL', 'CA_ROOT_TTL', 'CA_ROTATION_OVERLAP'] as const) {
    if (config[name] < 1000) throw new ConfigError(name, 'must be at least one second');
  }
  if (config.CA_DEFAULT_TTL > config.CA_MAX_TTL) {
    throw new ConfigError('CA_DEFAULT_TTL', 'must not be longer than CA_MAX_TTL');
  }
  if (config.CA_MAX_TTL >= config.CA_ROOT_TTL) {
    throw new ConfigError('CA_MAX_TTL', 'must be shorter than CA_ROOT_TTL');
  }
  if (config.CA_BOOTSTRAP_JWKS_FILE !== undefined && config.CA_BOOTSTRAP_JWKS_URL !== undefined) {
    throw new ConfigError(
      'CA_BOOTSTRAP_JWKS_URL',
      'set either CA_BOOTSTRAP_JWKS_FILE or CA_BOOTSTRAP_JWKS_URL, not both',
    );
  }
  if (config.CA_MAINTENANCE_INTERVAL < 100) {
    throw new ConfigError('CA_MAINTENANCE_INTERVAL', 'must be at least 100ms');
  }
  return config;
}
