// Types for config-docs.mjs, so the test that checks README.md gets checked signatures.
import type { ConfigSpec } from '@portcullis/runtime';

export const README_START: string;
export const README_END: string;
/** Every `services/<name>/src/config.ts` spec (its one `*_CONFIG` export), by service name. */
export function serviceSpecs(root?: string): Promise<{ service: string; spec: ConfigSpec }[]>;
/** The README's configuration table, markdown. */
export function configTable(root?: string): Promise<string>;
/** `readme` with the block between the config-table markers replaced by `table`. */
export function withTable(readme: string, table: string): string;
