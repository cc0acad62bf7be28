// @portcullis/demo-app: the bookinfo-style demo application, as a library for tests and the stack.
export { DEMO_APP_CONFIG, type DemoAppConfig, loadDemoAppConfig } from './config.ts';
export { buildDemoApp, type DemoAppDeps, type Product, type Review } from './demo-app.ts';
