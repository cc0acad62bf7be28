// Kills a server process when the Node process that started it dies, however it dies.
import { spawn } from 'node:child_process';

/**
 * Starts a tiny shell that waits for EOF on a pipe from this process and then signals `pid`. The
 * kernel closes the pipe when this process exits for any reason, SIGKILL included, which `exit`
 * handlers cannot cover: a test worker killed on a timeout would otherwise leave a JVM or a
 * postmaster running. The watcher is unref'd, so it never keeps this process alive.
 * Returns `release()`, to call once the server has been stopped normally.
 */
export function guardChild(pid, signal = 'TERM') {
  // `read` is a shell builtin, so killing the shell leaves nothing behind. After the polite signal,
  // SIGKILL follows if the server is still there 20 s later.
  const script = `read -r _; kill -${signal} ${pid} 2>/dev/null || exit 0; i=0; while kill -0 ${pid} 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; kill -KILL ${pid} 2>/dev/null; exit 0`;
  const watcher = spawn('/bin/sh', ['-c', script], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  watcher.on('error', () => {});
  watcher.stdin.on('error', () => {});
  watcher.unref();
  watcher.stdin.unref();
  let released = false;
  return function release() {
    if (released) return;
    released = true;
    watcher.kill('SIGKILL');
    watcher.stdin.destroy();
  };
}
