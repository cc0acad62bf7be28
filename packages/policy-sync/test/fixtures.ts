// Test support: small policies compiled with the real opa into archives shaped like the PAP's.
import { buildBundleArchive } from '@portcullis/bundle';
import { compileWasm } from '@portcullis/engine';
import { createLogger, createMetrics } from '@portcullis/runtime';
import { opaBin } from '@portcullis/testkit';

/** A policy whose `authz/allow` answers `input.user in data.users` and `authz/version` the data's version. */
export const POLICY = `package authz

default allow := false

allow if input.user in data.users

version := data.version
`;

export const ENTRYPOINTS = ['authz/allow', 'authz/version'];

/** Compiles POLICY with `data` into an OPA bundle archive with policy.wasm, as the PAP serves it. */
export async function compileArchive(
  data: Record<string, unknown>,
  revision: number,
  rego = POLICY,
): Promise<Buffer> {
  const compiled = await compileWasm({
    opaBin: opaBin(),
    modules: { 'authz/policy.rego': rego },
    data,
    entrypoints: ENTRYPOINTS,
  });
  return buildBundleArchive({
    modules: { 'authz/policy.rego': rego },
    data,
    wasm: compiled.wasm,
    entrypoints: ENTRYPOINTS,
    revision: String(revision),
  });
}

export function quiet() {
  return { logger: createLogger('policy-sync-test', 'silent'), metrics: createMetrics('policy-sync-test') };
}
