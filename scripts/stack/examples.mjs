// Loads the example bundles of policies/ into a fresh PAP: pushed and activated once, left alone afterwards.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every directory of `policiesDir` with a `bundle.json` is an example bundle. One the PAP has no
 * active revision of is pushed and activated (through the CLI's own calls); one it has is left as
 * it is, so a restarted stack keeps whatever was activated since. `cli` is `@portcullis/cli`.
 * Resolves with `{ name, revision, loaded }` per bundle; a bundle the PAP refuses rejects with the
 * API's errors, formatted as the CLI prints them.
 */
export async function loadExampleBundles({ cli, api, policiesDir }) {
  const entries = await readdir(policiesDir, { withFileTypes: true });
  const dirs = [];
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const dir = join(policiesDir, entry.name);
    const files = await readdir(dir);
    if (files.includes('bundle.json')) dirs.push(dir);
  }
  const results = [];
  for (const dir of dirs.sort()) {
    const content = await cli.readBundleDir(dir);
    try {
      const existing = await cli.findBundle(api, content.name);
      if (existing?.active) {
        results.push({ name: content.name, revision: existing.active.revision, loaded: false });
        continue;
      }
      const pushed = await cli.pushBundle(api, content);
      const active = await cli.activateBundleRevision(api, content.name, pushed.revision);
      results.push({ name: content.name, revision: active.revision, loaded: true });
    } catch (err) {
      if (err instanceof cli.ApiError) {
        throw new Error(`example bundle ${dir} was refused:\n${cli.formatApiError(err, dir)}`);
      }
      throw err;
    }
  }
  return results;
}
