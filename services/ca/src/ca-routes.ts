// The CA's HTTP API: the trust bundle (PEM or SPIFFE JSON), the authority's state, and admin-only rotation and records.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readCertificate, spiffeBundleDocument, trustBundlePem } from '@portcullis/pki';
import { type Pool, PortcullisError, parseDurationMs } from '@portcullis/runtime';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ActiveAuthority, CaAuthority, RotationMode } from './ca-authority.ts';

export interface CaRouteDeps {
  readonly authority: CaAuthority;
  readonly pool: Pool;
  /** Seconds; the SPIFFE bundle's `spiffe_refresh_hint`. */
  readonly refreshHintSeconds: number;
  readonly adminToken: string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

function adminCheck(adminToken: string | undefined): (request: FastifyRequest) => Promise<void> {
  const expected = adminToken === undefined ? undefined : digest(adminToken);
  return async (request) => {
    if (expected === undefined) {
      throw new PortcullisError('forbidden', 'management calls are disabled: CA_ADMIN_TOKEN is not set');
    }
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(request.headers.authorization ?? '');
    if (match?.[1] === undefined) {
      throw new PortcullisError(
        'unauthenticated',
        'this call needs `Authorization: Bearer <CA_ADMIN_TOKEN>`',
        {
          details: [{ field: 'headers.authorization', message: 'missing or not a bearer token' }],
        },
      );
    }
    // Digests have equal lengths, so the comparison takes the same time whatever was sent.
    if (!timingSafeEqual(digest(match[1]), expected)) {
      throw new PortcullisError('unauthenticated', 'the bearer token is not valid', {
        details: [{ field: 'headers.authorization', message: 'not the admin token' }],
      });
    }
  };
}

function authorityView(active: ActiveAuthority) {
  const { state } = active;
  const rootOf = (chain: readonly string[]) => chain[chain.length - 1];
  const activeRoot = rootOf(state.active.chainPem);
  const preparedRoot = state.prepared ? rootOf(state.prepared.chainPem) : undefined;
  return {
    trust_domain: state.trustDomain,
    version: active.version,
    bundle_sequence: state.bundleSequence,
    origin: state.active.origin,
    signing_chain_length: state.active.chainPem.length,
    roots: state.roots.map((root) => {
      const cert = readCertificate(root.certPem, 'ca_certificate_invalid');
      return {
        serial: cert.serialHex,
        not_before: cert.notBefore.toISOString(),
        not_after: cert.notAfter.toISOString(),
        added_at: root.addedAt,
        retire_at: root.retireAt ?? null,
        role:
          root.certPem === activeRoot ? 'active' : root.certPem === preparedRoot ? 'prepared' : 'retiring',
      };
    }),
  };
}

const ROOT_VIEW = {
  type: 'object',
  properties: {
    serial: { type: 'string' },
    not_before: { type: 'string' },
    not_after: { type: 'string' },
    added_at: { type: 'string' },
    retire_at: { type: ['string', 'null'] },
    role: { type: 'string', enum: ['active', 'prepared', 'retiring'] },
  },
} as const;

const AUTHORITY_VIEW = {
  type: 'object',
  properties: {
    trust_domain: { type: 'string' },
    version: { type: 'integer' },
    bundle_sequence: { type: 'integer' },
    origin: { type: 'string', enum: ['generated', 'plugged'] },
    signing_chain_length: { type: 'integer' },
    roots: { type: 'array', items: ROOT_VIEW },
  },
} as const;

export async function registerCaRoutes(app: FastifyInstance, deps: CaRouteDeps): Promise<void> {
  const admin = adminCheck(deps.adminToken);

  app.get<{ Querystring: { format?: 'pem' | 'spiffe' } }>(
    '/v1/trust-bundle',
    {
      schema: {
        summary: 'The trust bundle: every root a workload must accept (two during a rotation overlap)',
        description:
          'PEM by default; `?format=spiffe` or `Accept: application/json` gives the SPIFFE bundle document ' +
          '(x509-svid JWKs with `x5c`, `spiffe_sequence`, `spiffe_refresh_hint`). ETag and If-None-Match work.',
        security: [],
        querystring: {
          type: 'object',
          properties: { format: { type: 'string', enum: ['pem', 'spiffe'] } },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const active = deps.authority.current();
      const spiffe =
        request.query.format === 'spiffe' ||
        (request.query.format === undefined && /\bapplication\/json\b/.test(request.headers.accept ?? ''));
      const etag = `"${active.state.bundleSequence}-${active.version}-${spiffe ? 'spiffe' : 'pem'}"`;
      void reply
        .header('etag', etag)
        .header('cache-control', `max-age=${Math.min(deps.refreshHintSeconds, 60)}`);
      void reply.header('vary', 'accept');
      if (request.headers['if-none-match'] === etag) return reply.status(304).send();
      if (spiffe) {
        return reply.type('application/json').send(
          spiffeBundleDocument(active.bundlePem, {
            sequence: active.state.bundleSequence,
            refreshHintSeconds: deps.refreshHintSeconds,
          }),
        );
      }
      return reply.type('application/x-pem-file').send(trustBundlePem(active.bundlePem));
    },
  );

  app.get(
    '/v1/authority',
    {
      schema: {
        summary: 'The roots (with their role and retirement time) and the signing CA, without keys',
        security: [],
        response: { 200: AUTHORITY_VIEW },
      },
    },
    async () => authorityView(deps.authority.current()),
  );

  app.post<{ Body: { mode?: RotationMode; overlap?: string } }>(
    '/v1/authority/rotate',
    {
      onRequest: admin,
      schema: {
        summary: 'Rotate the root (admin)',
        description:
          '`rotate` (default): a new root signs from now on, the old one stays trusted for `overlap` ' +
          '(default CA_ROTATION_OVERLAP). `prepare` publishes a new root without signing with it, so peers learn it ' +
          'first; `activate` then makes it sign.',
        body: {
          type: 'object',
          properties: {
            mode: { type: 'string', enum: ['rotate', 'prepare', 'activate'] },
            overlap: { type: 'string', description: 'A duration such as 48h.' },
          },
          additionalProperties: false,
        },
        response: { 200: AUTHORITY_VIEW },
      },
    },
    async (request) => {
      const body = request.body ?? {};
      let overlapMs: number | undefined;
      if (body.overlap !== undefined) {
        try {
          overlapMs = parseDurationMs(body.overlap);
        } catch (error) {
          throw new PortcullisError('validation_failed', `body.overlap: ${(error as Error).message}`, {
            details: [{ field: 'body.overlap', message: (error as Error).message }],
          });
        }
        if (overlapMs < 1000) {
          throw new PortcullisError('validation_failed', 'body.overlap must be at least 1s', {
            details: [{ field: 'body.overlap', message: 'must be at least 1s' }],
          });
        }
      }
      try {
        return authorityView(await deps.authority.rotate(body.mode ?? 'rotate', 'admin', overlapMs));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === 'rotation_in_progress' || code === 'rotation_not_prepared') {
          throw new PortcullisError('conflict', (error as Error).message, { cause: error });
        }
        throw error;
      }
    },
  );

  app.get<{ Querystring: { spiffe_id?: string; limit?: number } }>(
    '/v1/issuances',
    {
      onRequest: admin,
      schema: {
        summary: 'Issued certificates, newest first (admin)',
        querystring: {
          type: 'object',
          properties: {
            spiffe_id: { type: 'string', maxLength: 2048 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { spiffe_id: spiffeId, limit = 100 } = request.query;
      const { rows } = await deps.pool.query(
        `SELECT serial, spiffe_id, not_before, not_after, caller, auth_method, key_type, issued_at
         FROM ca_issuances WHERE ($1::text IS NULL OR spiffe_id = $1)
         ORDER BY issued_at DESC, serial LIMIT $2`,
        [spiffeId ?? null, limit],
      );
      return { issuances: rows };
    },
  );

  app.get<{ Querystring: { action?: string; limit?: number } }>(
    '/v1/audit',
    {
      onRequest: admin,
      schema: {
        summary: 'Refused requests and authority changes, newest first (admin)',
        querystring: {
          type: 'object',
          properties: {
            action: { type: 'string', maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { action, limit = 100 } = request.query;
      const { rows } = await deps.pool.query(
        `SELECT id, at, action, actor, spiffe_id, reason, message, details
         FROM ca_audit WHERE ($1::text IS NULL OR action = $1) ORDER BY id DESC LIMIT $2`,
        [action ?? null, limit],
      );
      return { entries: rows.map((r) => ({ ...r, id: Number(r.id) })) };
    },
  );
}
