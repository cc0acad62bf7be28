// Test support for the PIP: a PIP on a fresh test database, request helpers and a RequestAuthentication builder.
import { createLogger, createMetrics, Health } from '@portcullis/runtime';
import { createTestDatabase, type TestDatabase } from '@portcullis/testkit';
import { loadPipConfig, type PipConfig } from '../src/config.ts';
import { buildPip, type Pip, type PipDeps } from '../src/pip-app.ts';

export const ADMIN_TOKEN = 'pip-test-admin-token-0123456789';
export const AUTHOR_TOKEN = 'pip-test-author-token-0123456789';
export const VIEWER_TOKEN = 'pip-test-viewer-token-0123456789';

export interface TestPip {
  pip: Pip;
  db: TestDatabase;
  config: PipConfig;
  /** Builds another PIP on the same database (a restart, or a second replica). */
  rebuild(env?: Record<string, string>, extra?: Partial<PipDeps>): Promise<Pip>;
  close(): Promise<void>;
}

/** A PIP on a fresh database, not listening (use `app.inject`, or `listen()` for gRPC). */
export async function startTestPip(
  env: Record<string, string> = {},
  extra: Partial<PipDeps> = {},
): Promise<TestPip> {
  const db = await createTestDatabase();
  const built: Pip[] = [];
  const make = async (more: Record<string, string> = {}, moreDeps: Partial<PipDeps> = {}): Promise<Pip> => {
    const config = loadPipConfig({
      DATABASE_URL: db.url,
      PIP_ADMIN_TOKEN: ADMIN_TOKEN,
      PIP_AUTHOR_TOKEN: AUTHOR_TOKEN,
      PIP_VIEWER_TOKEN: VIEWER_TOKEN,
      PIP_HTTP_PORT: '0',
      PIP_GRPC_PORT: '0',
      PIP_DB_POOL_MAX: '8',
      ...env,
      ...more,
    });
    const pip = await buildPip({
      config,
      logger: createLogger('pip', process.env.PIP_TEST_LOG ?? 'silent'),
      metrics: createMetrics('pip'),
      health: new Health(),
      ...extra,
      ...moreDeps,
    });
    built.push(pip);
    return pip;
  };
  const pip = await make();
  return {
    pip,
    db,
    config: pip.services.config,
    rebuild: make,
    async close() {
      for (const p of built) await p.close();
      await db.drop();
    },
  };
}

export function bearer(token: string = ADMIN_TOKEN): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A RequestAuthentication document with one rule per entry of `jwtRules`. */
export function requestAuthentication(
  namespace: string,
  name: string,
  jwtRules: Record<string, unknown>[],
  selector?: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name, namespace },
    spec: { ...(selector === undefined ? {} : { selector: { matchLabels: selector } }), jwtRules },
  };
}
