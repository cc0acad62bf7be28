// Mutual TLS over node:tls (and openssl s_client) with issued certificates, refusals and root rotation.
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneRetiredRoots, rotateRoot, trustBundleOf } from '../src/authority.ts';
import type { KeyType } from '../src/key-algorithms.ts';
import { spiffeServerIdentityCheck, verifyPeerSpiffeId } from '../src/peer-identity.ts';
import { isPkiError } from '../src/pki-error.ts';
import {
  issueLeaf,
  openTestAuthority,
  SECRET,
  type TestAuthority,
  testAuthority,
  workloadId,
} from './fixtures.ts';
import { makeTempDir, removeDir, writeFiles } from './openssl.ts';

const SERVER_ID = workloadId('default', 'server');
const CLIENT_ID = workloadId('default', 'client');
const INTRUDER_ID = workloadId('default', 'intruder');

interface Credential {
  readonly key: string;
  /** Leaf and intermediates, without the root, as a TLS peer sends them. */
  readonly cert: string;
}

function credential(authority: TestAuthority, spiffeId: string, keyType: KeyType = 'ec-p256'): Credential {
  const issued = issueLeaf(authority.issuer, spiffeId, keyType);
  return { key: issued.keyPem, cert: issued.chainPem.slice(0, -1).join('') };
}

interface ServerRecord {
  readonly port: number;
  readonly served: string[];
  readonly refused: string[];
  close(): Promise<void>;
}

/** A TLS server that requires a client certificate under `bundle` and answers allowed SPIFFE IDs with a greeting. */
async function startServer(
  identity: Credential,
  bundle: readonly string[],
  allowedClients: readonly string[],
): Promise<ServerRecord> {
  const served: string[] = [];
  const refused: string[] = [];
  const server = tls.createServer(
    { ...identity, ca: [...bundle], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
    (socket) => {
      try {
        const peer = verifyPeerSpiffeId(socket, allowedClients);
        served.push(peer.spiffeId);
        socket.end(`hello ${peer.spiffeId}\n`);
      } catch (error) {
        refused.push(isPkiError(error) ? error.code : String(error));
        socket.destroy();
      }
    },
  );
  server.on('tlsClientError', (error) => refused.push(`handshake: ${error.message}`));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    served,
    refused,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Connects, reads until the server closes; resolves with what was read and any error (never rejects). */
function exchange(
  port: number,
  identity: Credential,
  bundle: readonly string[],
  allowedServers: readonly string[],
) {
  return new Promise<{ data: string; error?: Error }>((resolve) => {
    let data = '';
    let failure: Error | undefined;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...identity,
      ca: [...bundle],
      minVersion: 'TLSv1.2',
      checkServerIdentity: spiffeServerIdentityCheck(allowedServers),
    });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', (error) => {
      failure = error;
    });
    socket.on('close', () => resolve(failure ? { data, error: failure } : { data }));
  });
}

let a: TestAuthority;
let foreign: TestAuthority;
let rotated: TestAuthority;
let pruned: readonly string[];
const creds: Record<string, Credential> = {};

beforeAll(async () => {
  [a, foreign] = await Promise.all([
    testAuthority({ intermediate: true }),
    testAuthority({ keyType: 'rsa-2048' }),
  ]);
  const t0 = Date.now();
  const rotatedState = await rotateRoot(a.state, { secret: SECRET, overlapSeconds: 3600, now: t0 });
  rotated = await openTestAuthority(rotatedState);
  pruned = trustBundleOf(pruneRetiredRoots(rotatedState, t0 + 2 * 3600 * 1000));
  Object.assign(creds, {
    server: credential(a, SERVER_ID),
    client: credential(a, CLIENT_ID),
    clientRsa: credential(a, CLIENT_ID, 'rsa-2048'),
    intruder: credential(a, INTRUDER_ID),
    foreignClient: credential(foreign, CLIENT_ID),
    newServer: credential(rotated, SERVER_ID),
    newClient: credential(rotated, CLIENT_ID),
  });
});

type Bundle = 'a' | 'foreign' | 'overlap' | 'pruned';
const bundles = (): Record<Bundle, readonly string[]> => ({
  a: a.bundlePem,
  foreign: foreign.bundlePem,
  overlap: rotated.bundlePem,
  pruned,
});

describe('mutual TLS with issued certificates', () => {
  it.each<
    [
      string,
      string,
      string,
      Bundle,
      Bundle,
      string,
      'served' | 'handshake refused by server' | 'peer_not_allowed' | 'client refused server',
    ]
  >([
    ['P-256 client and server of one root', 'client', 'server', 'a', 'a', SERVER_ID, 'served'],
    ['an RSA client', 'clientRsa', 'server', 'a', 'a', SERVER_ID, 'served'],
    [
      'a client certificate from another root',
      'foreignClient',
      'server',
      'a',
      'a',
      SERVER_ID,
      'handshake refused by server',
    ],
    [
      'a client whose SPIFFE ID is not allowed',
      'intruder',
      'server',
      'a',
      'a',
      SERVER_ID,
      'peer_not_allowed',
    ],
    [
      'a server whose SPIFFE ID the client does not allow',
      'client',
      'server',
      'a',
      'a',
      INTRUDER_ID,
      'client refused server',
    ],
    [
      'a client that does not trust the server root',
      'client',
      'server',
      'a',
      'foreign',
      SERVER_ID,
      'client refused server',
    ],
    [
      'rotation: old-root client, new-root server, both bundles',
      'client',
      'newServer',
      'overlap',
      'overlap',
      SERVER_ID,
      'served',
    ],
    [
      'rotation: new-root client, old-root server, both bundles',
      'newClient',
      'server',
      'overlap',
      'overlap',
      SERVER_ID,
      'served',
    ],
    [
      'rotation: old-root client after the old root was pruned',
      'client',
      'newServer',
      'pruned',
      'overlap',
      SERVER_ID,
      'handshake refused by server',
    ],
    [
      'rotation: client that never learned the new root',
      'client',
      'newServer',
      'overlap',
      'a',
      SERVER_ID,
      'client refused server',
    ],
  ])('%s', async (_name, clientName, serverName, serverBundle, clientBundle, allowedServer, outcome) => {
    const client = creds[clientName];
    const serverCred = creds[serverName];
    if (client === undefined || serverCred === undefined) throw new Error('missing fixture');
    const server = await startServer(serverCred, bundles()[serverBundle], [CLIENT_ID]);
    try {
      const result = await exchange(server.port, client, bundles()[clientBundle], [allowedServer]);
      if (outcome === 'served') {
        expect(result.data).toBe(`hello ${CLIENT_ID}\n`);
        expect(server.served).toEqual([CLIENT_ID]);
        return;
      }
      expect(result.data).toBe('');
      expect(server.served).toEqual([]);
      if (outcome === 'handshake refused by server') {
        await expect.poll(() => server.refused).toEqual([expect.stringMatching(/^handshake: /)]);
      } else if (outcome === 'peer_not_allowed') {
        expect(server.refused).toEqual(['peer_not_allowed']);
      } else {
        expect(result.error).toBeDefined();
        if (allowedServer !== SERVER_ID) expect(result.error).toMatchObject({ code: 'peer_not_allowed' });
        else expect(result.error?.message).toMatch(/certificate/i);
      }
    } finally {
      await server.close();
    }
  });
});

describe('a second process', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir('mtls');
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it('openssl s_client completes mutual TLS with an issued certificate and is identified', async () => {
    const server = await startServer(creds.server as Credential, a.bundlePem, [CLIENT_ID]);
    try {
      const client = creds.client as Credential;
      // s_client takes the leaf from -cert and the intermediates it must send from -cert_chain.
      await writeFiles(dir, {
        'client.pem': client.cert,
        'chain.pem': client.cert,
        'client.key': client.key,
        'root.pem': a.bundlePem.join(''),
      });
      const child = spawn(
        'openssl',
        [
          's_client',
          '-connect',
          `127.0.0.1:${server.port}`,
          '-cert',
          'client.pem',
          '-cert_chain',
          'chain.pem',
          '-key',
          'client.key',
          '-CAfile',
          'root.pem',
          '-verify_return_error',
          '-quiet',
        ],
        { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      await new Promise((resolve) => child.on('close', resolve));
      // The exit code is not asserted: OpenSSL 3 reports Node's close without close_notify as an EOF error.
      expect(stdout).toBe(`hello ${CLIENT_ID}\n`);
      expect(stderr).toMatch(/depth=2 O = cluster\.local, CN = Portcullis Root CA/);
      expect(stderr).not.toMatch(/verify error/);
      expect(server.served).toEqual([CLIENT_ID]);
    } finally {
      await server.close();
    }
  });
});
