// The CA as a process: `portcullis ca token|issue`, mutual TLS between two processes, renewal over mTLS, rotation with overlap.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readCertificate } from '@portcullis/pki';
import { caWorkloadIdentity, fetchTrustBundle } from '@portcullis/pki/ca-client';
import {
  createTestDatabase,
  freePorts,
  type Service,
  spawnService,
  type TestDatabase,
  TMP_ENV,
  waitFor,
} from '@portcullis/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCaSecrets } from '../scripts/stack/ca-secrets.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const ADMIN = 'ca-process-test-admin-token-0123';
const SERVER = 'spiffe://cluster.local/ns/default/sa/server';
const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';

let dir: string;
let db: TestDatabase;
let ca: Service;
let httpUrl: string;
let grpcAddr: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      cmd,
      args,
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => done({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const cliEnv = () => ({
  PORTCULLIS_HOME: join(dir, 'home'),
  PORTCULLIS_CA_ADDR: grpcAddr,
  PORTCULLIS_CA_URL: httpUrl,
});
const cli = (...args: string[]) => run(process.execPath, ['bin/portcullis.mjs', ...args], cliEnv());

async function issue(name: string, serviceAccount: string): Promise<string> {
  const out = join(dir, name);
  const result = await cli(
    'ca',
    'issue',
    '--namespace',
    'default',
    '--service-account',
    serviceAccount,
    '--out',
    out,
  );
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return out;
}

const SERVER_SCRIPT = `
import fs from 'node:fs'; import path from 'node:path'; import tls from 'node:tls';
const [dir, allowed] = process.argv.slice(2);
const read = (n) => fs.readFileSync(path.join(dir, n));
const server = tls.createServer(
  { key: read('key.pem'), cert: read('cert-chain.pem'), ca: read('root-cert.pem'), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
  (socket) => {
    const uri = (socket.getPeerCertificate().subjectaltname ?? '').replace(/^URI:/, '');
    socket.end(uri === allowed ? 'hello ' + uri + '\\n' : 'denied ' + uri + '\\n');
  });
server.on('tlsClientError', (e) => process.stdout.write('refused ' + (e.code ?? e.message) + '\\n'));
server.listen(0, '127.0.0.1', () => process.stdout.write('listening ' + server.address().port + '\\n'));
`;

const CLIENT_SCRIPT = `
import fs from 'node:fs'; import path from 'node:path'; import tls from 'node:tls';
const [dir, port, expected] = process.argv.slice(2);
const read = (n) => fs.readFileSync(path.join(dir, n));
const socket = tls.connect({
  host: '127.0.0.1', port: Number(port), key: read('key.pem'), cert: read('cert-chain.pem'), ca: read('root-cert.pem'),
  minVersion: 'TLSv1.2',
  checkServerIdentity: (_h, cert) => cert.subjectaltname === 'URI:' + expected ? undefined : new Error('unexpected server ' + cert.subjectaltname),
});
let data = '';
socket.on('data', (d) => { data += d; });
socket.on('end', () => process.stdout.write(data));
socket.on('error', (e) => { process.stdout.write('error ' + (e.code ?? e.message) + '\\n'); });
`;

/** Starts a TLS server process on `serverDir`'s files; resolves with it and its port. */
async function tlsServer(serverDir: string): Promise<{ process: Service; port: number }> {
  const server = await spawnService(process.execPath, [join(dir, 'server.mjs'), serverDir, CLIENT]);
  await waitFor(() => /listening \d+/.test(server.output()), {
    message: () => `the TLS server: ${server.output()}`,
  });
  return { process: server, port: Number(/listening (\d+)/.exec(server.output())?.[1]) };
}

async function handshake(clientDir: string, port: number): Promise<string> {
  return (
    await run(process.execPath, [join(dir, 'client.mjs'), clientDir, String(port), SERVER])
  ).stdout.trim();
}

async function between(serverDir: string, clientDir: string): Promise<string> {
  const server = await tlsServer(serverDir);
  try {
    return await handshake(clientDir, server.port);
  } finally {
    await server.process.stop();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(process.env[TMP_ENV] ?? tmpdir(), 'ca-process-'));
  await writeFile(join(dir, 'server.mjs'), SERVER_SCRIPT);
  await writeFile(join(dir, 'client.mjs'), CLIENT_SCRIPT);
  const { keyEncryptionKey, jwksFile } = ensureCaSecrets(join(dir, 'home'));
  db = await createTestDatabase();
  const [http, grpc] = await freePorts(2);
  httpUrl = `http://127.0.0.1:${http}`;
  grpcAddr = `127.0.0.1:${grpc}`;
  ca = await spawnService(
    process.execPath,
    ['--import', 'tsx', 'services/ca/src/main.ts'],
    {
      DATABASE_URL: db.url,
      CA_HTTP_PORT: String(http),
      CA_GRPC_PORT: String(grpc),
      CA_KEY_ENCRYPTION_KEY: keyEncryptionKey,
      CA_BOOTSTRAP_JWKS_FILE: jwksFile,
      CA_ADMIN_TOKEN: ADMIN,
      CA_MAINTENANCE_INTERVAL: '200ms',
    },
    { cwd: ROOT, readyUrl: `${httpUrl}/readyz`, readyTimeoutMs: 60_000 },
  );
});

afterAll(async () => {
  await ca?.stop();
  await db?.drop();
});

describe('the CA as a process', () => {
  it('`ca token` prints a bootstrap token of the development issuer', async () => {
    const result = await cli(
      'ca',
      'token',
      '--namespace',
      'default',
      '--service-account',
      'web',
      '--ttl',
      '10m',
    );
    expect(result.code).toBe(0);
    const [, payload] = result.stdout.trim().split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
    expect(claims).toMatchObject({
      sub: 'system:serviceaccount:default:web',
      aud: 'istio-ca',
      'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'web' } },
    });
    expect(claims.exp - claims.iat).toBe(600);
  });

  it.each([
    [['ca', 'token', '--namespace', 'default'], 'missing --service-account'],
    [['ca', 'issue', '--namespace', 'default', '--service-account', 'web'], 'missing --out'],
    [
      ['ca', 'issue', '--namespace', 'd', '--service-account', 'w', '--out', 'x', '--key-type', 'ed25519'],
      '--key-type',
    ],
  ])('usage errors exit 2: %j', async (args, message) => {
    const result = await cli(...args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('`ca issue` writes key (0600), chain and bundle that openssl verifies, and two processes handshake with them', async () => {
    const serverDir = await issue('server', 'server');
    const clientDir = await issue('client', 'client');
    expect((await stat(join(clientDir, 'key.pem'))).mode & 0o777).toBe(0o600);
    const verified = await run('openssl', [
      'verify',
      '-CAfile',
      join(clientDir, 'root-cert.pem'),
      join(clientDir, 'cert-chain.pem'),
    ]);
    expect(verified.stdout).toContain(': OK');
    expect(await between(serverDir, clientDir)).toBe(`hello ${CLIENT}`);
    // A workload that is not the allowed client is answered with a refusal, not a greeting.
    const intruderDir = await issue('intruder', 'intruder');
    expect(await between(serverDir, intruderDir)).toBe(
      'denied spiffe://cluster.local/ns/default/sa/intruder',
    );
  });

  it('a workload renews over mutual TLS without a token', async () => {
    let tokens = 0;
    const bundle = await fetchTrustBundle(httpUrl);
    const { identity, client } = caWorkloadIdentity({
      namespace: 'default',
      serviceAccount: 'renewer',
      trustDomain: 'cluster.local',
      ca: {
        address: grpcAddr,
        initialBundle: bundle,
        token: async () => {
          tokens++;
          if (tokens > 1) return undefined;
          const minted = await cli('ca', 'token', '--namespace', 'default', '--service-account', 'renewer');
          return minted.stdout.trim();
        },
      },
    });
    try {
      await identity.start();
      const first = identity.status().serial;
      await identity.renewNow();
      expect(identity.status()).toMatchObject({ state: 'OK' });
      expect(identity.status().serial).not.toBe(first);
      const res = await fetch(
        `${httpUrl}/v1/issuances?spiffe_id=spiffe://cluster.local/ns/default/sa/renewer`,
        {
          headers: { authorization: `Bearer ${ADMIN}` },
        },
      );
      const { issuances } = (await res.json()) as { issuances: { auth_method: string }[] };
      expect(issuances.map((i) => i.auth_method)).toEqual(['mtls', 'token']);
    } finally {
      identity.stop();
      client.close();
    }
  });

  it('handshakes keep working across a root rotation during the overlap, and fail after it', async () => {
    const clientDir = join(dir, 'client');
    const rotate = await fetch(`${httpUrl}/v1/authority/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ overlap: '20s' }),
    });
    expect(rotate.status).toBe(200);
    // The server renews under the new root; the client keeps its old-root certificate and only
    // refreshes its bundle, as WorkloadIdentity does between renewals.
    const newServerDir = await issue('server-new', 'server');
    const serverChain =
      (await readFile(join(newServerDir, 'cert-chain.pem'), 'utf8')).match(
        /-----BEGIN[\s\S]+?END CERTIFICATE-----/g,
      ) ?? [];
    const clientChain =
      (await readFile(join(clientDir, 'cert-chain.pem'), 'utf8')).match(
        /-----BEGIN[\s\S]+?END CERTIFICATE-----/g,
      ) ?? [];
    expect(serverChain.at(-1)).not.toBe(clientChain.at(-1));
    const bundle = await fetchTrustBundle(httpUrl);
    expect(bundle).toHaveLength(2);
    await writeFile(join(clientDir, 'root-cert.pem'), bundle.join(''));
    expect(await between(newServerDir, clientDir)).toBe(`hello ${CLIENT}`);

    // Once the overlap has passed the old root is pruned: a server with the new bundle refuses the old certificate.
    await waitFor(async () => (await fetchTrustBundle(httpUrl)).length === 1, {
      timeoutMs: 45_000,
      message: 'the old root pruned',
    });
    await writeFile(join(newServerDir, 'root-cert.pem'), (await fetchTrustBundle(httpUrl)).join(''));
    const refused = await between(newServerDir, clientDir);
    expect(refused).not.toContain('hello');
    expect(
      readCertificate(clientChain[0] ?? '', 'workload_chain_invalid').notAfter.getTime(),
    ).toBeGreaterThan(Date.now());
  });
});
