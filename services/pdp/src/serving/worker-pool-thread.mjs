// Bootstrap of a worker-pool thread: registers the TypeScript loader in this thread, then runs the thread's module.
import { register } from 'tsx/esm/api';

register();
await import('./worker-pool-thread.ts');
