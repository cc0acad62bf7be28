// Graceful shutdown on SIGTERM/SIGINT: stop accepting, let in-flight work finish, close pools.
import type { Logger } from 'pino';

export interface Shutdown {
  /** Registers a step; steps run in reverse order of registration (last built, first closed). */
  add(name: string, step: () => Promise<void> | void): void;
  /** Runs every step once; later calls return the same promise. */
  run(reason: string): Promise<void>;
}

export function createShutdown(logger: Logger, deadlineMs = 10_000): Shutdown {
  const steps: { name: string; step: () => Promise<void> | void }[] = [];
  let running: Promise<void> | undefined;
  return {
    add(name, step) {
      steps.push({ name, step });
    },
    run(reason) {
      running ??= (async () => {
        logger.info({ reason }, 'shutting down');
        const all = (async () => {
          for (const { name, step } of [...steps].reverse()) {
            try {
              await step();
            } catch (err) {
              logger.error({ err, step: name }, 'shutdown step failed');
            }
          }
        })();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'deadline'>((resolve) => {
          timer = setTimeout(() => resolve('deadline'), deadlineMs);
          timer.unref();
        });
        const outcome = await Promise.race([all.then(() => 'done' as const), deadline]);
        clearTimeout(timer);
        if (outcome === 'deadline') logger.warn({ deadlineMs }, 'shutdown deadline passed; exiting');
        else logger.info('shutdown complete');
      })();
      return running;
    },
  };
}

/** Exits the process after a clean shutdown on SIGTERM or SIGINT (a second signal exits at once). */
export function handleSignals(shutdown: Shutdown): void {
  let signalled = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => {
      if (signalled) process.exit(1);
      signalled = true;
      void shutdown.run(sig).then(() => process.exit(0));
    });
  }
}
