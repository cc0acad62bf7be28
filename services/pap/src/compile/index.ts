// The PAP's compile step: bundle sources checked, tested and compiled to WASM with opa; uploads read.

export {
  type BundleSource,
  DEFAULT_SOURCE_LIMITS,
  type SourceLimits,
  validateSource,
} from './bundle-source.ts';
export {
  BUNDLE_MEDIA_TYPES,
  type BundleUpload,
  type BundleUploadOptions,
  readBundleUpload,
} from './bundle-upload.ts';
export { type CompiledBundle, type CompileOptions, compileBundle } from './compile-bundle.ts';
export { opaVersion } from './opa-process.ts';
export { readWasmBuiltins } from './wasm-builtins.ts';
