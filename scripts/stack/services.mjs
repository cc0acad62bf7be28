// The services of the one-machine stack, in start order: adding a service to `npm start` is one entry here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureCaSecrets } from './ca-secrets.mjs';

/** The PAP's admin token from its file, or undefined (the PIP then refuses management calls, and says so). */
function readToken(file) {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * One entry per service, started in this order (put a service after those it needs) and stopped in
 * the reverse order. Fields:
 * - `name`: prefixes its log lines and names `<home>/logs/<name>.log`.
 * - `main`: the entry point, relative to the repository root, run with `node --import tsx`.
 * - `ports`: `{ key: [ENV_VAR, default] }`, the service's own port settings. A value already set in
 *   the environment wins; the launcher checks each port is free before starting anything.
 * - `env(ctx)`: settings the stack gives the service, where the environment does not set them.
 *   `ctx` = `{ home, databaseUrl, opaBin, ports }`, `ports` holding every service's resolved ports
 *   by service name (`ctx.ports.pap.grpc`), for services that call each other.
 * - `ready(ports)`: a URL that answers 200 once the service is ready (its /readyz).
 * - `endpoints(ports)`: `[label, address, note]` rows for the banner.
 */
export const SERVICES = [
  {
    name: 'pap',
    main: 'services/pap/src/main.ts',
    ports: { http: ['PAP_HTTP_PORT', 8080], grpc: ['PAP_GRPC_PORT', 9080] },
    env: ({ home, databaseUrl, opaBin }) => ({
      DATABASE_URL: databaseUrl,
      OPA_BIN: opaBin,
      PAP_ADMIN_TOKEN_FILE: join(home, 'admin-token'),
      BUS: 'postgres',
    }),
    ready: (p) => `http://127.0.0.1:${p.http}/readyz`,
    endpoints: (p) => [
      ['PAP REST API', `http://127.0.0.1:${p.http}`, 'OpenAPI at /openapi.json, docs at /docs'],
      ['PAP gRPC', `127.0.0.1:${p.grpc}`, 'portcullis.pap.v1.PolicyDistribution'],
    ],
  },
  {
    name: 'pip',
    main: 'services/pip/src/main.ts',
    ports: { http: ['PIP_HTTP_PORT', 8282], grpc: ['PIP_GRPC_PORT', 9282] },
    // Started after the PAP, whose admin token (from PAP_ADMIN_TOKEN or the file it wrote) the PIP accepts
    // too: one token for the stack. The PIP reads it at start; a token created later in the PAP is not known here.
    env: ({ home, databaseUrl }) => {
      const token =
        process.env.PAP_ADMIN_TOKEN ??
        readToken(process.env.PAP_ADMIN_TOKEN_FILE ?? join(home, 'admin-token'));
      return { DATABASE_URL: databaseUrl, BUS: 'postgres', ...(token ? { PIP_ADMIN_TOKEN: token } : {}) };
    },
    ready: (p) => `http://127.0.0.1:${p.http}/readyz`,
    endpoints: (p) => [
      [
        'PIP REST API',
        `http://127.0.0.1:${p.http}`,
        'RequestAuthentications, /v1/authenticate, attributes; /docs',
      ],
      ['PIP gRPC', `127.0.0.1:${p.grpc}`, 'portcullis.pip.v1.Identity, portcullis.pip.v1.Attributes'],
    ],
  },
  {
    name: 'pdp',
    main: 'services/pdp/src/main.ts',
    ports: { http: ['PDP_HTTP_PORT', 8181], grpc: ['PDP_GRPC_PORT', 9181] },
    env: ({ home, databaseUrl, ports }) => ({
      DATABASE_URL: databaseUrl,
      BUS: 'postgres',
      PAP_GRPC_ADDR: `127.0.0.1:${ports.pap.grpc}`,
      PDP_CACHE_DIR: join(home, 'pdp-cache'),
    }),
    // Not /readyz: that waits for a bundle, and the examples are pushed once every service is up.
    ready: (p) => `http://127.0.0.1:${p.http}/healthz`,
    endpoints: (p) => [
      ['PDP Data API', `http://127.0.0.1:${p.http}`, 'OPA-compatible: POST /v1/data/<path> {"input": …}'],
      ['PDP gRPC', `127.0.0.1:${p.grpc}`, 'portcullis.pdp.v1.Decisions'],
    ],
  },
  {
    name: 'demo-app',
    main: 'services/demo-app/src/main.ts',
    ports: { http: ['DEMO_APP_PORT', 8000] },
    env: () => ({}),
    ready: (p) => `http://127.0.0.1:${p.http}/readyz`,
    endpoints: (p) => [
      [
        'Demo app',
        `http://127.0.0.1:${p.http}/productpage`,
        'bookinfo-style; Envoy fronts it in docker compose',
      ],
    ],
  },
  {
    name: 'ext-authz',
    main: 'services/ext-authz/src/main.ts',
    ports: { http: ['EXT_AUTHZ_HTTP_PORT', 8191], grpc: ['EXT_AUTHZ_GRPC_PORT', 9191] },
    // The in-process engine follows the example bundle like a PDP (bus events, reconcile, disk cache).
    env: ({ home, databaseUrl, ports }) => ({
      DATABASE_URL: databaseUrl,
      BUS: 'postgres',
      PAP_GRPC_ADDR: `127.0.0.1:${ports.pap.grpc}`,
      EXT_AUTHZ_CACHE_DIR: join(home, 'ext-authz-cache'),
      EXT_AUTHZ_BUNDLES: 'envoy-authz',
      EXT_AUTHZ_DECISION_PATH: 'envoy/authz/result',
    }),
    // Not /readyz: that waits for a bundle, and the examples are pushed once every service is up.
    ready: (p) => `http://127.0.0.1:${p.http}/healthz`,
    endpoints: (p) => [
      ['ext-authz gRPC', `127.0.0.1:${p.grpc}`, 'envoy.service.auth.v3.Authorization/Check'],
      [
        'ext-authz HTTP mode',
        `http://127.0.0.1:${p.http}/envoy-authz/productpage`,
        'Envoy’s HTTP authorization service: the status is the decision',
      ],
    ],
  },
  {
    name: 'ca',
    main: 'services/ca/src/main.ts',
    ports: { http: ['CA_HTTP_PORT', 8383], grpc: ['CA_GRPC_PORT', 15012] },
    // Its key-encryption key and the development token issuer are made on the first start, in the
    // stack's home; the admin token is the PAP's, as for the PIP: one token for the stack.
    env: ({ home, databaseUrl }) => {
      const { keyEncryptionKey, jwksFile } = ensureCaSecrets(home);
      const token =
        process.env.PAP_ADMIN_TOKEN ??
        readToken(process.env.PAP_ADMIN_TOKEN_FILE ?? join(home, 'admin-token'));
      return {
        DATABASE_URL: databaseUrl,
        CA_KEY_ENCRYPTION_KEY: keyEncryptionKey,
        CA_BOOTSTRAP_JWKS_FILE: jwksFile,
        ...(token ? { CA_ADMIN_TOKEN: token } : {}),
      };
    },
    ready: (p) => `http://127.0.0.1:${p.http}/readyz`,
    endpoints: (p) => [
      [
        'CA trust bundle',
        `http://127.0.0.1:${p.http}/v1/trust-bundle`,
        'PEM, or ?format=spiffe; docs at /docs',
      ],
      [
        'CA gRPC (TLS)',
        `127.0.0.1:${p.grpc}`,
        'istio.v1.auth.IstioCertificateService; `portcullis ca issue` gets a certificate',
      ],
    ],
  },
];
