// @portcullis/runtime: what every service shares — config, logs, metrics, tracing, health,
// shutdown, errors, HTTP and gRPC plumbing, Postgres and the event bus.

export * from './bus/index.ts';
export * from './bus.ts';
export * from './config.ts';
export * from './db.ts';
export * from './decision-log.ts';
export * from './errors.ts';
export * from './grpc.ts';
export * from './http-server.ts';
export * from './lifecycle.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './outbox-relay.ts';
export * from './service.ts';
export * from './shutdown.ts';
export * from './threads/thread-pool.ts';
export * from './tracing.ts';
