// PAP entry point: wiring only — read config, build the parts, serve, stop cleanly.
import {
  busConfigFromSettings,
  createBus,
  createServiceContext,
  OutboxRelay,
  runMain,
} from '@portcullis/runtime';
import { loadPapConfig } from './config.ts';
import { buildPap } from './pap-app.ts';

runMain('pap', async () => {
  const config = loadPapConfig();
  const busConfig = busConfigFromSettings(config, { clientId: 'pap', databaseUrl: config.DATABASE_URL });
  const ctx = await createServiceContext('pap');
  const pap = await buildPap({ config, ...ctx });
  ctx.shutdown.add('pap', () => pap.close());
  // Shutdown runs in reverse: the relay stops before the bus closes, both before the pool.
  const bus = createBus(busConfig, ctx.logger);
  ctx.shutdown.add('bus', () => bus.close());
  const relay = new OutboxRelay({ pool: pap.pool, bus, logger: ctx.logger, metrics: ctx.metrics });
  ctx.health.add(relay);
  await relay.start();
  ctx.shutdown.add('outbox-relay', () => relay.stop());
  await pap.listen();
});
