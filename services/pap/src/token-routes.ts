// REST routes for API tokens (admin only): create (the token is shown once), list, delete.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { principalOf, requireRole } from './auth.ts';
import type { PapServices } from './pap-app.ts';
import { BEARER, CreatedToken, CreateTokenBody, errorResponses, TokenList, TokenParams } from './schemas.ts';

export async function registerTokenRoutes(app: FastifyInstance, pap: PapServices): Promise<void> {
  const admin = requireRole(pap.tokens, 'admin');

  app.post<{ Body: CreateTokenBody }>(
    '/v1/tokens',
    {
      onRequest: admin,
      schema: {
        tags: ['tokens'],
        summary: 'Create an API token',
        description: 'The clear token is in this response only; the PAP stores its sha256. Role: admin.',
        security: BEARER,
        body: CreateTokenBody,
        response: { 201: CreatedToken, ...errorResponses(400, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const { token, record } = await pap.tokens.create({
        name: request.body.name,
        role: request.body.role,
        actor: principalOf(request).name,
        requestId: request.id,
      });
      return reply.code(201).send({ ...record, token });
    },
  );

  app.get(
    '/v1/tokens',
    {
      onRequest: admin,
      schema: {
        tags: ['tokens'],
        summary: 'List API tokens (never the tokens themselves)',
        description: 'Role: admin.',
        security: BEARER,
        response: { 200: TokenList, ...errorResponses() },
      },
    },
    async () => ({ tokens: await pap.tokens.list() }),
  );

  app.delete<{ Params: TokenParams }>(
    '/v1/tokens/:id',
    {
      onRequest: admin,
      schema: {
        tags: ['tokens'],
        summary: 'Revoke an API token',
        description: 'The last admin token cannot be deleted (409). Role: admin.',
        security: BEARER,
        params: TokenParams,
        response: { 204: Type.Null({ description: 'Deleted.' }), ...errorResponses(400, 404, 409) },
      },
    },
    async (request, reply) => {
      await pap.tokens.remove(request.params.id, principalOf(request).name, request.id);
      return reply.code(204).send();
    },
  );
}
