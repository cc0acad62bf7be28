// REST route for the audit trail: newest first, filtered by bundle and actor, paged by cursor.
import type { FastifyInstance } from 'fastify';
import { listAudit } from './audit-store.ts';
import { requireRole } from './auth.ts';
import type { PapServices } from './pap-app.ts';
import { AuditPage, AuditQuery, BEARER, errorResponses } from './schemas.ts';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;

export async function registerAuditRoutes(app: FastifyInstance, pap: PapServices): Promise<void> {
  app.get<{ Querystring: AuditQuery }>(
    '/v1/audit',
    {
      onRequest: requireRole(pap.tokens, 'viewer'),
      schema: {
        tags: ['audit'],
        summary: 'Who changed what, when',
        description:
          'Every mutating call (revision.create, bundle.activate, token.create, token.delete, token.bootstrap) ' +
          'with actor, target, digests before and after, time and request id. Role: viewer.',
        security: BEARER,
        querystring: AuditQuery,
        response: { 200: AuditPage, ...errorResponses(400) },
      },
    },
    async (request) => {
      const q = request.query;
      return listAudit(pap.pool, {
        limit: Math.min(Number(q.limit ?? DEFAULT_LIMIT), MAX_LIMIT),
        ...(q.bundle === undefined ? {} : { bundle: q.bundle }),
        ...(q.actor === undefined ? {} : { actor: q.actor }),
        ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
      });
    },
  );
}
