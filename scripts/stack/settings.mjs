// The stack launcher's own settings, declared once: read here, and listed by scripts/config-docs.mjs.
import { join, resolve } from 'node:path';
import { SERVICES } from './services.mjs';

/** `{ doc, defaultDoc }` per variable, in the shape scripts/config-docs.mjs documents. */
export const STACK_SETTINGS = {
  PORTCULLIS_HOME: {
    defaultDoc: '`.portcullis`',
    doc: 'Where `npm start` keeps the embedded Postgres data, the logs and the admin token; the CLI reads the token from there too.',
  },
  PORTCULLIS_PG_PORT: {
    defaultDoc: 'any free port',
    doc: 'Port of the embedded Postgres that `npm start` runs.',
  },
  DATABASE_URL: {
    defaultDoc: '(unset)',
    doc: 'For `npm start`: use this database instead of starting the embedded Postgres.',
  },
};

export class StackError extends Error {}

/**
 * The launcher's settings and every service's ports (`ports[service][key]`), from `env`. A value
 * that does not parse throws StackError naming the variable. Service ports may not be 0: the
 * launcher must know where to look for a service's readiness.
 */
export function readStackSettings(env, root) {
  const port = (name, fallback, { allowZero = false } = {}) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw) || n > 65535 || (n === 0 && !allowZero)) {
      throw new StackError(
        `${name}: expected a port number${allowZero ? ' (0: any free port)' : ''}, got ${JSON.stringify(raw)}`,
      );
    }
    return n;
  };
  const ports = {};
  for (const service of SERVICES) {
    ports[service.name] = {};
    for (const [key, [name, fallback]] of Object.entries(service.ports)) {
      ports[service.name][key] = port(name, fallback);
    }
  }
  return {
    home: resolve(env.PORTCULLIS_HOME || join(root, '.portcullis')),
    pgPort: port('PORTCULLIS_PG_PORT', 0, { allowZero: true }),
    databaseUrl: env.DATABASE_URL || undefined,
    ports,
  };
}
