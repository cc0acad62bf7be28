// Types for services.mjs, so tests can give every service of the stack its own ports.
export interface StackContext {
  home: string;
  databaseUrl: string;
  opaBin: string;
  /** Every service's resolved ports, by service name then port key. */
  ports: Record<string, Record<string, number>>;
}

export interface StackService {
  name: string;
  /** Entry point relative to the repository root, run with `node --import tsx`. */
  main: string;
  /** `{ key: [ENV_VAR, defaultPort] }`. */
  ports: Record<string, [string, number]>;
  env(ctx: StackContext): Record<string, string>;
  ready(ports: Record<string, number>): string;
  endpoints(ports: Record<string, number>): [string, string, string][];
}

export const SERVICES: StackService[];
