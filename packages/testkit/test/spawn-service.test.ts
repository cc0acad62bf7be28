// spawnService: readiness by URL, captured output for failures, and SIGTERM-then-SIGKILL stopping.
import { describe, expect, it } from 'vitest';
import { freePort, ServiceStartError, spawnService, waitFor } from '../src/index.ts';

const node = process.execPath;

const httpServer = `
const http = require('node:http');
process.on('SIGTERM', () => { console.error('got SIGTERM'); process.exit(0); });
http.createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'));
`;

describe('spawnService', () => {
  it('resolves once readyUrl answers 200, captures output, and stops with SIGTERM', async () => {
    const port = await freePort();
    const service = await spawnService(
      node,
      ['-e', httpServer],
      { PORT: String(port) },
      {
        readyUrl: `http://127.0.0.1:${port}/`,
      },
    );
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('ok');
    expect(service.output()).toContain('listening');

    expect(await service.stop()).toEqual({ code: 0, signal: null });
    expect(service.output()).toContain('got SIGTERM');
    expect(await service.stop()).toEqual({ code: 0, signal: null });
  });

  it.each([
    {
      name: 'exits before it is ready',
      script: "console.error('bad value for PORT'); process.exit(3)",
      // Far beyond the test's own timeout: only noticing the exit at once lets this case pass.
      readyTimeoutMs: 600_000,
      expected: /exited \(code 3, signal null\) before .* was ready\. Output:\nbad value for PORT/,
    },
    {
      name: 'never answers',
      script: "console.log('pretending to boot'); setInterval(() => {}, 1000)",
      readyTimeoutMs: 300,
      expected:
        /timed out after 300 ms waiting for .* to answer 200 \(last error: .*\)\. Output:\npretending to boot/s,
    },
  ])('rejects with the output when the service $name', async ({ script, readyTimeoutMs, expected }) => {
    const port = await freePort();
    const started = spawnService(
      node,
      ['-e', script],
      {},
      { readyUrl: `http://127.0.0.1:${port}/`, readyTimeoutMs },
    );
    await expect(started).rejects.toBeInstanceOf(ServiceStartError);
    await expect(started).rejects.toThrow(expected);
  });

  it('falls back to SIGKILL when the service ignores SIGTERM', async () => {
    const service = await spawnService(
      node,
      [
        '-e',
        "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000)",
      ],
      {},
      { stopTimeoutMs: 200 },
    );
    await waitFor(() => service.output().includes('ready'), {
      message: 'the SIGTERM handler to be installed',
    });
    expect(await service.stop()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(service.output()).toContain('ignoring SIGTERM');
  });

  it('rejects when the command cannot be started', async () => {
    await expect(spawnService('/nonexistent/portcullis-service')).rejects.toThrow(
      /cannot start \/nonexistent\/portcullis-service: spawn .* ENOENT/,
    );
  });
});
