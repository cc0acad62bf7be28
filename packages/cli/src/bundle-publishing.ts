// Pushing a bundle's content and activating a revision: the two calls the CLI and the stack launcher share.
import { type ApiClient, ApiError } from './api-client.ts';
import type { ActivationView, BundleView, RevisionCreated } from './api-types.ts';
import type { BundleContent } from './bundle-dir.ts';

const enc = encodeURIComponent;

export interface PushResult extends RevisionCreated {
  /** false: the same content already was this revision (the PAP answered 200, nothing stored). */
  created: boolean;
}

/** Creates a revision from the whole content; the same content twice returns the existing revision. */
export async function pushBundle(api: ApiClient, content: BundleContent): Promise<PushResult> {
  const res = await api.request('POST', `/v1/bundles/${enc(content.name)}/revisions`, {
    json: { modules: content.modules, data: content.data, entrypoints: content.entrypoints },
  });
  const created = (await res.json()) as RevisionCreated;
  return { ...created, created: res.status === 201 };
}

/** The bundle with its active revision, or undefined when the PAP has no bundle of that name. */
export async function findBundle(api: ApiClient, name: string): Promise<BundleView | undefined> {
  try {
    return await api.json<BundleView>('GET', `/v1/bundles/${enc(name)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined;
    throw err;
  }
}

/**
 * Activates `revision` under If-Match with the ETag just read. A concurrent activation between
 * the read and the write makes this fail with `precondition_failed` (412) rather than overwrite
 * it: the caller decides whether activating anyway is still right.
 */
export async function activateBundleRevision(
  api: ApiClient,
  name: string,
  revision: number,
): Promise<ActivationView> {
  const current = await api.json<BundleView>('GET', `/v1/bundles/${enc(name)}`);
  return api.json<ActivationView>(
    'PUT',
    `/v1/bundles/${enc(name)}/active`,
    { revision },
    { 'if-match': current.etag },
  );
}
