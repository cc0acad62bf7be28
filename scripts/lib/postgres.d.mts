// Types for postgres.mjs.
export interface StartPostgresOptions {
  /** Initialised on first use, kept on later starts. */
  dataDir: string;
  /** 0 or absent: a free port. */
  port?: number;
  /** Password of the `postgres` superuser, set when the data directory is initialised. Default `postgres`. */
  password?: string;
  /** false: fsync, synchronous_commit and full_page_writes off (throwaway test servers). Default true. */
  durable?: boolean;
  /** Default 200. */
  maxConnections?: number;
  /** Where the server's output goes. Default `<dataDir>.log`. */
  logFile?: string;
  /** Default 60 000. */
  readyTimeoutMs?: number;
}

export interface PostgresServer {
  /** Superuser URL of the `postgres` database: `postgres://postgres:<password>@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  /** Fast shutdown (clients are disconnected); idempotent. */
  stop(): Promise<void>;
}

export function startPostgres(options: StartPostgresOptions): Promise<PostgresServer>;
