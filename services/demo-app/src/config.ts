// Every setting of the demo application, declared once.
import { type ConfigOf, env, loadConfig } from '@portcullis/runtime';

export const DEMO_APP_CONFIG = {
  DEMO_APP_PORT: env.port({
    default: 8000,
    doc: 'The demo application (bookinfo-style) that Envoy fronts: /productpage, /api/v1/products, /reviews, /health.',
  }),
  DEMO_APP_HOST: env.string({
    default: '127.0.0.1',
    doc: 'Address the demo application binds to (`0.0.0.0` in containers).',
  }),
};

export type DemoAppConfig = ConfigOf<typeof DEMO_APP_CONFIG>;

export function loadDemoAppConfig(source: NodeJS.ProcessEnv = process.env): DemoAppConfig {
  return loadConfig(DEMO_APP_CONFIG, source);
}
