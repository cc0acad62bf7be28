// What the cross-service enrichment tests share: a PIP in this process on a fresh database and the postgres bus, and an ES256 token issuer.
import { buildPip, loadPipConfig, type Pip } from '@portcullis/pip';
import { type Bus, createBus, createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase } from '@portcullis/testkit';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { expect } from 'vitest';

export type Signer = (claims: Record<string, unknown>) => Promise<string>;

export interface TestPip {
  readonly pip: Pip;
  readonly bus: Bus;
  readonly db: TestDatabase;
  readonly grpcPort: number;
  /** PUTs a JSON document to the PIP's REST API as its admin; fails the test on an error status. */
  put(url: string, payload: object): Promise<void>;
  /** Closes the PIP and its bus and drops the database. */
  close(): Promise<void>;
}

/** A PIP listening on free ports; `name` names its logger and its admin token. */
export async function startTestPip(name: string): Promise<TestPip> {
  const token = `${name}-admin-token-0123456789`;
  const db = await createTestDatabase();
  const logger = createLogger(name, 'silent');
  const bus = createBus({ transport: 'postgres', url: db.url, pollIntervalMs: 200 }, logger);
  let pip: Pip;
  let grpcPort: number;
  try {
    pip = await buildPip({
      config: loadPipConfig({
        DATABASE_URL: db.url,
        PIP_ADMIN_TOKEN: token,
        PIP_HTTP_PORT: '0',
        PIP_GRPC_PORT: '0',
      }),
      logger,
      metrics: createMetrics('pip'),
      health: new Health(),
      bus,
    });
    ({ grpcPort } = await pip.listen());
  } catch (error) {
    await bus.close();
    await db.drop();
    throw error;
  }
  return {
    pip,
    bus,
    db,
    grpcPort,
    async put(url, payload) {
      const res = await pip.app.inject({
        method: 'PUT',
        url,
        headers: { authorization: `Bearer ${token}` },
        payload,
      });
      expect(res.statusCode, res.body).toBeLessThan(300);
    },
    async close() {
      await pip.close();
      await bus.close();
      await db.drop();
    },
  };
}

/** A fresh ES256 key: tokens from `iss` under `kid` valid for ten minutes, and the public JWK. */
export async function es256Issuer(
  iss: string,
  kid: string,
): Promise<{ sign: Signer; jwk: Record<string, unknown> }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return {
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
    sign: (claims) =>
      new SignJWT({ iss, exp: Math.floor(Date.now() / 1000) + 600, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid })
        .sign(privateKey),
  };
}
