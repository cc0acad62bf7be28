// @portcullis/engine: loads compiled policy revisions into WebAssembly and evaluates decisions with them.

export {
  type BuiltinDef,
  BuiltinError,
  type BuiltinTable,
  type EvalContext,
} from './builtins/builtin-types.ts';
export { HOST_BUILTINS, SUPPORTED_HOST_BUILTINS, unsupportedBuiltins } from './builtins/index.ts';
export { type CompiledWasm, type CompileWasmOptions, compileWasm } from './compile-wasm.ts';
export { sha256Hex, verifyDigest } from './digest.ts';
export { EngineError, type EngineErrorCode, isEngineError } from './engine-error.ts';
export { normalizeEntrypoint } from './entrypoint-path.ts';
export {
  type Decision,
  type JsonDecision,
  LoadedPolicy,
  type LoadOptions,
  loadRevision,
  type Revision,
} from './loaded-policy.ts';
export { type LoadedInfo, PolicyEngine } from './policy-engine.ts';
export { requiredBuiltins, requiredBuiltinsSync } from './wasm-policy.ts';
