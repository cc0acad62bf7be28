// The host builtins this engine provides to OPA's WASM target, and the check the PAP runs before accepting a module.
import { requiredBuiltinsSync } from '../wasm-policy.ts';
import type { BuiltinTable } from './builtin-types.ts';
import { encodingBuiltins } from './encoding.ts';
import { jwtBuiltins } from './jwt.ts';
import { netBuiltins } from './net.ts';
import { numberBuiltins } from './numbers.ts';
import { regexBuiltins } from './regex.ts';
import { stringBuiltins } from './strings.ts';
import { timeBuiltins } from './time.ts';

/** Every builtin the engine implements on the host side, by OPA name. */
export const HOST_BUILTINS: BuiltinTable = Object.freeze({
  ...jwtBuiltins,
  ...timeBuiltins,
  ...encodingBuiltins,
  ...stringBuiltins,
  ...regexBuiltins,
  ...netBuiltins,
  ...numberBuiltins,
});

export const SUPPORTED_HOST_BUILTINS: ReadonlySet<string> = new Set(Object.keys(HOST_BUILTINS));

/**
 * The builtins a compiled module needs from the host that this engine cannot run, sorted; the PAP rejects
 * a bundle when this is not empty. Takes the module itself, or the list it imports (`CompiledWasm.builtins`,
 * `requiredBuiltins(wasm)`, `LoadedPolicy.requiredBuiltins`). Builtins the WASM target implements natively
 * never appear in a module's imports, so an empty result means the module runs here.
 */
export function unsupportedBuiltins(required: Uint8Array | Iterable<string>): string[] {
  const names = required instanceof Uint8Array ? requiredBuiltinsSync(required) : required;
  return [...new Set(names)].filter((name) => !SUPPORTED_HOST_BUILTINS.has(name)).sort();
}
