// PIP entry point: wiring only — read config, build the parts, serve, stop cleanly.
import { busConfigFromSettings, createBus, createServiceContext, runMain } from '@portcullis/runtime';
import { loadPipConfig } from './config.ts';
import { buildPip } from './pip-app.ts';

runMain('pip', async () => {
  const config = loadPipConfig();
  const busConfig = busConfigFromSettings(config, { clientId: 'pip', databaseUrl: config.DATABASE_URL });
  const ctx = await createServiceContext('pip');
  // Shutdown runs in reverse: the PIP (relay, sync, servers) stops before the bus closes.
  const bus = createBus(busConfig, ctx.logger);
  ctx.shutdown.add('bus', () => bus.close());
  const pip = await buildPip({ config, bus, ...ctx });
  ctx.shutdown.add('pip', () => pip.close());
  await pip.listen();
});
