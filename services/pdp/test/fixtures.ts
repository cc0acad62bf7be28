// Test support for the PDP: a policy compiled with the real opa, served by an in-memory PolicyDistribution.
import { buildBundleArchive } from '@portcullis/bundle';
import { compileWasm } from '@portcullis/engine';
import { StaticPolicyDistribution } from '@portcullis/policy-sync';
import { type Bus, createLogger, createMetrics, Health, type ServiceMetrics } from '@portcullis/runtime';
import { opaBin, waitFor } from '@portcullis/testkit';
import { loadPdpConfig } from '../src/config.ts';
import { buildPdp, type Pdp } from '../src/pdp-app.ts';

export const MODULES = {
  'authz/policy.rego': `package authz

default allow := false

allow if input.user in data.users

profile := {"user": input.user, "admin": input.user in data.admins, "tags": ["a", "b"]} if input.user

version := data.version

# Two complete definitions that disagree for an input with both flags: an evaluation error.
conflict := 1 if input.a

conflict := 2 if input.b
`,
  'system/main.rego': `package system

main := {"allowed": data.authz.allow}
`,
};

export const ENTRYPOINTS = ['authz/allow', 'authz/profile', 'authz/version', 'authz/conflict', 'system/main'];

export function dataOf(version: number): Record<string, unknown> {
  return {
    users: ['alice', 'bob'],
    admins: ['alice'],
    version,
    settings: { region: 'eu', limits: [10, 20] },
  };
}

export async function compileArchive(version: number): Promise<Buffer> {
  const data = dataOf(version);
  const compiled = await compileWasm({ opaBin: opaBin(), modules: MODULES, data, entrypoints: ENTRYPOINTS });
  return buildBundleArchive({
    modules: MODULES,
    data,
    wasm: compiled.wasm,
    entrypoints: ENTRYPOINTS,
    revision: String(version),
  });
}

export interface TestPdp {
  pdp: Pdp;
  distribution: StaticPolicyDistribution;
  metrics: ServiceMetrics;
  health: Health;
  /** Set when started with `listen`. */
  httpUrl: string;
  grpcPort: number;
  close(): Promise<void>;
}

/** A PDP (not listening unless `listen`) following an in-memory distribution that serves `archive` as revision 1. */
export async function startTestPdp(
  archive: Buffer | undefined,
  env: Record<string, string> = {},
  opts: { bus?: Bus; listen?: boolean } = {},
): Promise<TestPdp> {
  const logger = createLogger('pdp-test', 'silent');
  const distribution = new StaticPolicyDistribution({ logger, metrics: createMetrics('pdp-test-pap') });
  if (archive) distribution.activate(archive, { bundle: 'authz', revision: 1 });
  const address = await distribution.listen();
  const metrics = createMetrics('pdp-test');
  const health = new Health();
  const config = loadPdpConfig({
    PAP_GRPC_ADDR: address,
    PDP_HTTP_PORT: '0',
    PDP_GRPC_PORT: '0',
    PDP_CACHE_DIR: 'off',
    BUS: 'postgres',
    DATABASE_URL: 'postgres://unused',
    ...env,
  });
  const pdp = await buildPdp({ config, logger, metrics, health, ...(opts.bus ? { bus: opts.bus } : {}) });
  const bound = opts.listen ? await pdp.listen() : { httpUrl: '', grpcPort: 0 };
  if (archive) await waitFor(() => pdp.documents.bundles().length > 0, { message: 'the bundle to load' });
  return {
    pdp,
    distribution,
    metrics,
    health,
    ...bound,
    async close() {
      await pdp.close();
      await distribution.close();
    },
  };
}
