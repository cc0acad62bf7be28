// Boots the shared parts of a service (logger, metrics, health, tracing, shutdown) in one call.
import { ConfigError } from './config.ts';
import { Health } from './lifecycle.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type ServiceMetrics } from './metrics.ts';
import { createShutdown, handleSignals, type Shutdown } from './shutdown.ts';
import { startTracing } from './tracing.ts';

export interface ServiceContext {
  name: string;
  logger: Logger;
  metrics: ServiceMetrics;
  health: Health;
  shutdown: Shutdown;
}

export async function createServiceContext(
  name: string,
  opts: { signals?: boolean } = {},
): Promise<ServiceContext> {
  const tracing = await startTracing(name);
  const logger = createLogger(name);
  const shutdown = createShutdown(logger, Number(process.env.SHUTDOWN_DEADLINE_MS ?? 10_000));
  shutdown.add('tracing', () => tracing.shutdown());
  if (opts.signals ?? true) handleSignals(shutdown);
  return { name, logger, metrics: createMetrics(name), health: new Health(), shutdown };
}

/**
 * Runs a service's `main`: a configuration error prints one line naming the variable and exits
 * with status 78 (EX_CONFIG); any other start failure is logged and exits 1.
 */
export function runMain(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(78);
    }
    process.stderr.write(
      `${name}: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
