// Finds free TCP ports on the loopback interface for servers that are started on "any port".
import { createServer } from 'node:net';

function listenOnAnyPort(host) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => resolve(server));
  });
}

function close(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * `count` distinct ports that were free a moment ago. They are held open together so the kernel cannot
 * hand out the same one twice; another process may still take one before the caller binds it.
 */
export async function freePorts(count, host = '127.0.0.1') {
  const servers = [];
  try {
    for (let i = 0; i < count; i += 1) servers.push(await listenOnAnyPort(host));
    return servers.map((server) => server.address().port);
  } finally {
    await Promise.all(servers.map(close));
  }
}

/** One port that was free a moment ago (see freePorts for the caveat). */
export async function freePort(host = '127.0.0.1') {
  const [port] = await freePorts(1, host);
  return port;
}
