// Types for orphan-guard.mjs.
export function guardChild(pid: number, signal?: 'TERM' | 'INT' | 'KILL'): () => void;
