// Bearer-token authentication and role checks; roles are ordered, each including those below it.
import { PortcullisError } from '@portcullis/runtime';
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { Role } from './schemas.ts';
import type { Principal, TokenStore } from './token-store.ts';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/**
 * viewer reads and evaluates; author also creates revisions; publisher also activates (a CI
 * pipeline that pushes and activates, without token management); admin also manages tokens.
 */
const RANK: Record<Role, number> = { viewer: 0, author: 1, publisher: 2, admin: 3 };

export function roleAllows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) {
    throw new PortcullisError('unauthenticated', 'the Authorization header must be `Bearer <token>`', {
      details: [{ field: 'headers.authorization', message: 'not a bearer token' }],
    });
  }
  return m[1];
}

/**
 * An onRequest hook: it runs before the body is read, so an unauthenticated caller cannot make
 * the PAP buffer or parse an upload.
 */
export function requireRole(tokens: TokenStore, needed: Role): onRequestAsyncHookHandler {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      const token = bearerToken(request);
      if (token === undefined) {
        throw new PortcullisError('unauthenticated', 'this call needs a bearer token', {
          details: [{ field: 'headers.authorization', message: 'missing' }],
        });
      }
      const principal = await tokens.authenticate(token);
      if (!principal) {
        throw new PortcullisError('unauthenticated', 'the bearer token is not valid', {
          details: [{ field: 'headers.authorization', message: 'unknown or revoked token' }],
        });
      }
      if (!roleAllows(principal.role, needed)) {
        throw new PortcullisError(
          'forbidden',
          `this call needs the ${needed} role; the token has ${principal.role}`,
          {
            details: [{ required: needed, role: principal.role }],
          },
        );
      }
      request.principal = principal;
    } catch (err) {
      if (err instanceof PortcullisError && err.code === 'unauthenticated') {
        void reply.header('www-authenticate', 'Bearer realm="portcullis-pap"');
      }
      throw err;
    }
  };
}

/** The authenticated caller of a route guarded by requireRole. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new PortcullisError('internal', 'route has no authentication hook');
  return request.principal;
}
