// Types for free-port.mjs.
export function freePorts(count: number, host?: string): Promise<number[]>;
export function freePort(host?: string): Promise<number>;
