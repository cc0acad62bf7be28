// Demo application entry point: wiring only — read config, build the app, serve, stop cleanly.
import { createServiceContext, listen, runMain } from '@portcullis/runtime';
import { loadDemoAppConfig } from './config.ts';
import { buildDemoApp } from './demo-app.ts';

runMain('demo-app', async () => {
  const config = loadDemoAppConfig();
  const ctx = await createServiceContext('demo-app');
  const app = await buildDemoApp(ctx);
  const { url } = await listen(app, config.DEMO_APP_PORT, config.DEMO_APP_HOST);
  ctx.shutdown.add('http', () => app.close());
  ctx.logger.info({ url }, 'demo app serving');
});
