// The CA benchmark's transport floor: the CA's gRPC stack (runtime GrpcServer, Istio's service, TLS that
// accepts client certificates) answering every CreateCertificate with the same chain — no CSR, no
// signature, no record — so the bench can say how much of an issuance is the transport.
import { readFile } from 'node:fs/promises';
import { CA_PROTOS, CERTIFICATE_SERVICE } from '@portcullis/pki/ca-client';
import {
  createLogger,
  createMetrics,
  GrpcServer,
  grpc,
  type HandlerMap,
  loadProtos,
  serviceClient,
} from '@portcullis/runtime';

const file = (name: string) => {
  const path = process.env[name];
  if (path === undefined) throw new Error(`${name} must name a file`);
  return readFile(path);
};
const [key, chain, clientCa, answer] = await Promise.all([
  file('BENCH_TLS_KEY_FILE'),
  file('BENCH_TLS_CHAIN_FILE'),
  file('BENCH_CLIENT_CA_FILE'),
  file('BENCH_ANSWER_FILE'),
]);
const response = { cert_chain: JSON.parse(answer.toString()) as string[] };
const server = new GrpcServer({
  logger: createLogger('bench-floor', 'warn'),
  metrics: createMetrics('bench-floor'),
});
server.addService(serviceClient(loadProtos(CA_PROTOS), CERTIFICATE_SERVICE).service, {
  CreateCertificate: async () => response,
} as HandlerMap);
const bound = await server.bind(
  `127.0.0.1:${Number(process.env.BENCH_GRPC_PORT ?? 0)}`,
  grpc.ServerCredentials.createSsl(clientCa, [{ private_key: key, cert_chain: chain }], false),
);
process.stdout.write(`listening ${bound}\n`);
process.on('SIGTERM', () => {
  void server.shutdown(1000).then(() => process.exit(0));
});
