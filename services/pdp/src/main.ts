// PDP entry point: wiring only — read config, build the parts, serve, stop cleanly.
import { busConfigFromSettings, createBus, createServiceContext, runMain } from '@portcullis/runtime';
import { loadPdpConfig } from './config.ts';
import { buildPdp } from './pdp-app.ts';

runMain('pdp', async () => {
  const config = loadPdpConfig();
  const busConfig = busConfigFromSettings(config, { clientId: 'pdp', databaseUrl: config.DATABASE_URL });
  const ctx = await createServiceContext('pdp');
  // Shutdown runs in reverse: the PDP stops serving and syncing before the bus closes.
  const bus = createBus(busConfig, ctx.logger);
  ctx.shutdown.add('bus', () => bus.close());
  const pdp = await buildPdp({ config, ...ctx, bus });
  ctx.shutdown.add('pdp', () => pdp.close());
  await pdp.listen();
});
