// Bundles and their immutable revisions in Postgres: numbering without gaps, idempotent inserts, reads.
import type { Revision } from '@portcullis/engine';
import { type Pool, PortcullisError, withTransaction } from '@portcullis/runtime';
import { appendAudit } from './audit-store.ts';
import type { BundleView, RevisionCreated, RevisionDetail, RevisionSummary } from './schemas.ts';

/** What a compiled revision stores; the archives are built once its number is known. */
export interface NewRevision {
  bundle: string;
  contentHash: string;
  modules: Record<string, string>;
  data: unknown;
  entrypoints: string[];
  strict: boolean;
  wasm: Buffer;
  builtins: string[];
  tests: { passed: number; total: number };
  opaVersion: string;
  author: string;
  requestId?: string;
}

export interface RevisionArchives {
  bundleTar: Buffer;
  digest: string;
  regoTar: Buffer;
  regoDigest: string;
  manifest: unknown;
}

/** Both archives of a revision: the manifest's `revision` is the revision number. */
export type ArchiveBuilder = (revision: number) => RevisionArchives;

export interface ActiveRevisionView {
  bundle: string;
  revision: number;
  digest: string;
  activationSeq: string;
  activatedAt: Date;
  entrypoints: string[];
}

interface BundleRow {
  name: string;
  entrypoints: string[];
  strict: boolean;
  last_revision: number;
  created_at: Date;
  active_revision: number | null;
  active_digest: string | null;
  active_seq: string | null;
  activated_at: Date | null;
  active_actor: string | null;
}

const BUNDLE_SELECT = `
  SELECT b.name, b.entrypoints, b.strict, b.last_revision, b.created_at,
         a.revision AS active_revision, a.digest AS active_digest, a.seq AS active_seq,
         a.activated_at, a.actor AS active_actor
    FROM bundles b
    LEFT JOIN active_revisions ar ON ar.bundle = b.name
    LEFT JOIN activations a ON a.seq = ar.seq`;

/** The ETag of a bundle's current activation; `"0"` before the first activation. */
export function activationEtag(seq: string | number | null): string {
  return `"${seq ?? 0}"`;
}

function bundleView(r: BundleRow): BundleView {
  return {
    name: r.name,
    entrypoints: r.entrypoints,
    strict: r.strict,
    latest_revision: r.last_revision,
    created_at: r.created_at.toISOString(),
    active:
      r.active_seq === null ||
      r.active_revision === null ||
      r.active_digest === null ||
      r.activated_at === null
        ? null
        : {
            revision: r.active_revision,
            digest: r.active_digest,
            activation_seq: Number(r.active_seq),
            activated_at: r.activated_at.toISOString(),
            actor: r.active_actor ?? '',
          },
    etag: activationEtag(r.active_seq),
  };
}

const SUMMARY_COLUMNS = `r.bundle, r.revision, r.digest, r.rego_digest, r.entrypoints, r.strict, r.author,
  r.created_at, r.opa_version, (a.revision IS NOT NULL AND a.revision = r.revision) AS active`;

interface SummaryRow {
  bundle: string;
  revision: number;
  digest: string;
  rego_digest: string;
  entrypoints: string[];
  strict: boolean;
  author: string;
  created_at: Date;
  opa_version: string;
  active: boolean;
}

function summaryView(r: SummaryRow): RevisionSummary {
  return {
    bundle: r.bundle,
    revision: r.revision,
    digest: r.digest,
    rego_digest: r.rego_digest,
    entrypoints: r.entrypoints,
    strict: r.strict,
    author: r.author,
    created_at: r.created_at.toISOString(),
    opa_version: r.opa_version,
    active: r.active,
  };
}

function noBundle(bundle: string): PortcullisError {
  return new PortcullisError('not_found', `no bundle ${bundle}`, {
    details: [{ field: 'params.bundle', bundle }],
  });
}

function noRevision(bundle: string, revision: number, field = 'params.rev'): PortcullisError {
  return new PortcullisError('not_found', `bundle ${bundle} has no revision ${revision}`, {
    details: [{ field, bundle, revision }],
  });
}

export class BundleStore {
  constructor(private readonly pool: Pool) {}

  /** The bundle's strict setting for a new revision: its own, or true for a bundle not yet created. */
  async strictFlag(bundle: string): Promise<boolean> {
    const { rows } = await this.pool.query<{ strict: boolean }>(
      'SELECT strict FROM bundles WHERE name = $1',
      [bundle],
    );
    return rows[0]?.strict ?? true;
  }

  async findByContentHash(bundle: string, hash: string): Promise<RevisionCreated | undefined> {
    const { rows } = await this.pool.query<{ revision: number; digest: string }>(
      'SELECT revision, digest FROM revisions WHERE bundle = $1 AND content_hash = $2',
      [bundle, hash],
    );
    const r = rows[0];
    return r ? { bundle, revision: r.revision, digest: r.digest } : undefined;
  }

  /**
   * Stores a revision under the bundle's row lock, so concurrent posts to one bundle get
   * consecutive numbers with no gaps, and the same content posted concurrently is stored once
   * (`created: false` returns the revision that won). The audit entry commits with it.
   */
  async insertRevision(
    rev: NewRevision,
    build: ArchiveBuilder,
  ): Promise<{ created: boolean; revision: RevisionCreated }> {
    return withTransaction(this.pool, async (client) => {
      await client.query(
        'INSERT INTO bundles (name, entrypoints, strict) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING',
        [rev.bundle, rev.entrypoints, rev.strict],
      );
      const { rows: locked } = await client.query<{ last_revision: number }>(
        'SELECT last_revision FROM bundles WHERE name = $1 FOR UPDATE',
        [rev.bundle],
      );
      const { rows: existing } = await client.query<{ revision: number; digest: string }>(
        'SELECT revision, digest FROM revisions WHERE bundle = $1 AND content_hash = $2',
        [rev.bundle, rev.contentHash],
      );
      if (existing[0]) {
        return { created: false, revision: { bundle: rev.bundle, ...existing[0] } };
      }
      const number = (locked[0]?.last_revision ?? 0) + 1;
      const archives = build(number);
      await client.query(
        `INSERT INTO revisions (bundle, revision, content_hash, sources, data, entrypoints, strict, policy_wasm,
           bundle_tar, digest, rego_tar, rego_digest, manifest, builtins, tests_passed, tests_total, author, opa_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
        [
          rev.bundle,
          number,
          rev.contentHash,
          JSON.stringify(rev.modules),
          JSON.stringify(rev.data ?? {}),
          rev.entrypoints,
          rev.strict,
          rev.wasm,
          archives.bundleTar,
          archives.digest,
          archives.regoTar,
          archives.regoDigest,
          JSON.stringify(archives.manifest ?? {}),
          rev.builtins,
          rev.tests.passed,
          rev.tests.total,
          rev.author,
          rev.opaVersion,
        ],
      );
      await client.query(
        'UPDATE bundles SET last_revision = $2, entrypoints = $3, strict = $4 WHERE name = $1',
        [rev.bundle, number, rev.entrypoints, rev.strict],
      );
      await appendAudit(client, {
        actor: rev.author,
        action: 'revision.create',
        target: `bundles/${rev.bundle}/revisions/${number}`,
        bundle: rev.bundle,
        digestAfter: archives.digest,
        requestId: rev.requestId ?? null,
        details: {
          revision: number,
          entrypoints: rev.entrypoints,
          strict: rev.strict,
          tests: rev.tests,
          opa_version: rev.opaVersion,
        },
      });
      return { created: true, revision: { bundle: rev.bundle, revision: number, digest: archives.digest } };
    });
  }

  async listBundles(): Promise<BundleView[]> {
    const { rows } = await this.pool.query<BundleRow>(`${BUNDLE_SELECT} ORDER BY b.name`);
    return rows.map(bundleView);
  }

  async getBundle(bundle: string): Promise<BundleView> {
    const { rows } = await this.pool.query<BundleRow>(`${BUNDLE_SELECT} WHERE b.name = $1`, [bundle]);
    if (!rows[0]) throw noBundle(bundle);
    return bundleView(rows[0]);
  }

  /** Newest first. */
  async listRevisions(bundle: string): Promise<RevisionSummary[]> {
    await this.getBundle(bundle);
    const { rows } = await this.pool.query<SummaryRow>(
      `SELECT ${SUMMARY_COLUMNS}
         FROM revisions r
         LEFT JOIN active_revisions ar ON ar.bundle = r.bundle
         LEFT JOIN activations a ON a.seq = ar.seq
        WHERE r.bundle = $1 ORDER BY r.revision DESC`,
      [bundle],
    );
    return rows.map(summaryView);
  }

  async getRevision(bundle: string, revision: number): Promise<RevisionDetail> {
    const { rows } = await this.pool.query<
      SummaryRow & {
        sources: Record<string, string>;
        data: unknown;
        manifest: unknown;
        builtins: string[];
        tests_passed: number;
        tests_total: number;
      }
    >(
      `SELECT ${SUMMARY_COLUMNS}, r.sources, r.data, r.manifest, r.builtins, r.tests_passed, r.tests_total
         FROM revisions r
         LEFT JOIN active_revisions ar ON ar.bundle = r.bundle
         LEFT JOIN activations a ON a.seq = ar.seq
        WHERE r.bundle = $1 AND r.revision = $2`,
      [bundle, revision],
    );
    const r = rows[0];
    if (!r) {
      await this.getBundle(bundle);
      throw noRevision(bundle, revision);
    }
    return {
      ...summaryView(r),
      modules: r.sources,
      data: r.data,
      manifest: r.manifest,
      builtins: r.builtins,
      tests: { passed: r.tests_passed, total: r.tests_total },
    };
  }

  /** What the engine needs to evaluate a revision. */
  async getEvaluable(bundle: string, revision: number): Promise<Revision> {
    const { rows } = await this.pool.query<{
      digest: string;
      policy_wasm: Buffer;
      data: unknown;
      entrypoints: string[];
    }>('SELECT digest, policy_wasm, data, entrypoints FROM revisions WHERE bundle = $1 AND revision = $2', [
      bundle,
      revision,
    ]);
    const r = rows[0];
    if (!r) {
      await this.getBundle(bundle);
      throw noRevision(bundle, revision);
    }
    return {
      bundle,
      revision,
      digest: r.digest,
      wasm: r.policy_wasm,
      data: r.data,
      entrypoints: r.entrypoints,
    };
  }

  /** The active revision's archive: with policy.wasm (`wasm`) or sources only (`rego`). 404 when none is active. */
  async activeArchive(
    bundle: string,
    target: 'wasm' | 'rego',
  ): Promise<{ bytes: Buffer; digest: string; revision: number }> {
    const col =
      target === 'rego' ? 'r.rego_tar AS bytes, r.rego_digest AS digest' : 'r.bundle_tar AS bytes, r.digest';
    const { rows } = await this.pool.query<{ bytes: Buffer; digest: string; revision: number }>(
      `SELECT ${col}, r.revision
         FROM active_revisions ar
         JOIN activations a ON a.seq = ar.seq
         JOIN revisions r ON r.bundle = a.bundle AND r.revision = a.revision
        WHERE ar.bundle = $1`,
      [bundle],
    );
    const r = rows[0];
    if (!r) {
      await this.getBundle(bundle);
      throw new PortcullisError('not_found', `bundle ${bundle} has no active revision`, {
        details: [{ field: 'params.bundle', bundle }],
      });
    }
    return r;
  }

  /** The bundle archive of the revision with this digest (FetchBundle). */
  async archiveByDigest(bundle: string, digest: string): Promise<Buffer> {
    const { rows } = await this.pool.query<{ bundle_tar: Buffer }>(
      'SELECT bundle_tar FROM revisions WHERE bundle = $1 AND digest = $2 LIMIT 1',
      [bundle, digest],
    );
    if (!rows[0]) {
      throw new PortcullisError('not_found', `bundle ${bundle} has no revision with digest ${digest}`, {
        details: [{ bundle, digest }],
      });
    }
    return rows[0].bundle_tar;
  }

  /** Active revisions of one bundle (404 if it does not exist) or of all bundles. */
  async active(bundle?: string): Promise<ActiveRevisionView[]> {
    if (bundle) await this.getBundle(bundle);
    const { rows } = await this.pool.query<{
      bundle: string;
      revision: number;
      digest: string;
      seq: string;
      activated_at: Date;
      entrypoints: string[];
    }>(
      `SELECT a.bundle, a.revision, a.digest, a.seq, a.activated_at, r.entrypoints
         FROM active_revisions ar
         JOIN activations a ON a.seq = ar.seq
         JOIN revisions r ON r.bundle = a.bundle AND r.revision = a.revision
        WHERE ($1::text IS NULL OR ar.bundle = $1)
        ORDER BY a.bundle`,
      [bundle || null],
    );
    return rows.map((r) => ({
      bundle: r.bundle,
      revision: r.revision,
      digest: r.digest,
      activationSeq: r.seq,
      activatedAt: r.activated_at,
      entrypoints: r.entrypoints,
    }));
  }
}
