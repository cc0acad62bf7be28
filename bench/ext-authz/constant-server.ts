// The ext-authz benchmark's transport floor: the same gRPC server stack as the adapter (runtime GrpcServer, Envoy's service definition) answering every Check with a fixed allow, no input and no policy.
import {
  authorizationServiceDefinition,
  type CheckResponse,
  failOpenResponse,
} from '@portcullis/envoy-authz';
import { createLogger, createMetrics, GrpcServer, type HandlerMap } from '@portcullis/runtime';

const port = Number(process.env.BENCH_GRPC_PORT ?? 0);
const server = new GrpcServer({
  logger: createLogger('bench-floor', 'warn'),
  metrics: createMetrics('bench-floor'),
});
const response: CheckResponse = failOpenResponse('00000000-0000-0000-0000-000000000000');
server.addService(authorizationServiceDefinition, { Check: async () => response } as HandlerMap);
const bound = await server.bind(`127.0.0.1:${port}`);
process.stdout.write(`listening ${bound}\n`);
process.on('SIGTERM', () => {
  void server.shutdown(1000).then(() => process.exit(0));
});
