// Entry of every pool thread: a thread does not inherit its parent's loader hooks, so TypeScript
// support is registered here before the pool's module (given in workerData) is imported.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
