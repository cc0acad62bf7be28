// Bearer tokens of the PIP's management API and the role each call needs (viewer < author < publisher < admin, as the PAP).
import { createHash, timingSafeEqual } from 'node:crypto';
import { PortcullisError } from '@portcullis/runtime';
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';

export const ROLES = ['viewer', 'author', 'publisher', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const RANK: Record<Role, number> = { viewer: 0, author: 1, publisher: 2, admin: 3 };

export function roleAllows(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

export interface ApiCaller {
  /** The token's name (`admin-env`, …): the actor recorded on changes. */
  readonly name: string;
  readonly role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: ApiCaller | null;
  }
}

/**
 * The tokens the PIP accepts. For now they come from configuration (PIP_ADMIN_TOKEN, …): the PAP's
 * token store lives in the PAP's database and service, which the PIP must not import; once that
 * store moves into a package, a database-backed implementation of this class can replace it.
 * Tokens are kept as sha256 digests and compared in constant time.
 */
export class ApiTokens {
  private readonly entries: { digest: Buffer; caller: ApiCaller }[];

  constructor(tokens: Partial<Record<Role, string | undefined>>) {
    this.entries = [];
    for (const role of ROLES) {
      const token = tokens[role];
      if (token !== undefined)
        this.entries.push({ digest: digest(token), caller: { name: `${role}-env`, role } });
    }
  }

  /** Whether any token is configured; without one every management call is refused. */
  get configured(): boolean {
    return this.entries.length > 0;
  }

  authenticate(token: string): ApiCaller | undefined {
    const candidate = digest(token);
    let found: ApiCaller | undefined;
    // Every entry is compared, so the time taken does not tell which role a near miss belonged to.
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, candidate)) found = entry.caller;
    }
    return found;
  }

  /** An onRequest hook: it runs before the body is read, so an unauthenticated caller cannot make the PIP parse an upload. */
  require(needed: Role): onRequestAsyncHookHandler {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        request.caller = this.check(request.headers.authorization, needed);
      } catch (err) {
        if (err instanceof PortcullisError && err.code === 'unauthenticated') {
          void reply.header('www-authenticate', 'Bearer realm="portcullis-pip"');
        }
        throw err;
      }
    };
  }

  private check(header: string | undefined, needed: Role): ApiCaller {
    if (header === undefined) {
      throw new PortcullisError('unauthenticated', 'this call needs a bearer token', {
        details: [{ field: 'headers.authorization', message: 'missing' }],
      });
    }
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) {
      throw new PortcullisError('unauthenticated', 'the Authorization header must be `Bearer <token>`', {
        details: [{ field: 'headers.authorization', message: 'not a bearer token' }],
      });
    }
    const caller = this.authenticate(m[1]!);
    if (caller === undefined) {
      throw new PortcullisError('unauthenticated', 'the bearer token is not valid', {
        details: [{ field: 'headers.authorization', message: 'unknown token' }],
      });
    }
    if (!roleAllows(caller.role, needed)) {
      throw new PortcullisError(
        'forbidden',
        `this call needs the ${needed} role; the token has ${caller.role}`,
        {
          details: [{ required: needed, role: caller.role }],
        },
      );
    }
    return caller;
  }
}

/** The authenticated caller of a route guarded by `ApiTokens.require`. */
export function callerOf(request: FastifyRequest): ApiCaller {
  if (!request.caller) throw new PortcullisError('internal', 'route has no authentication hook');
  return request.caller;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
