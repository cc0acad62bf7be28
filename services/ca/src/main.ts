// CA entry point: wiring only — read config, build the parts, serve, stop cleanly.
import { createServiceContext, runMain } from '@portcullis/runtime';
import { buildCa } from './ca-app.ts';
import { loadCaConfig } from './config.ts';

runMain('ca', async () => {
  const config = loadCaConfig();
  const ctx = await createServiceContext('ca');
  const ca = await buildCa({ config, ...ctx });
  ctx.shutdown.add('ca', () => ca.close());
  await ca.listen();
});
