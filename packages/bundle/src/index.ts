// @portcullis/bundle: the OPA bundle format (.tar.gz), written deterministically and read defensively.
export { type BundleManifest, MANIFEST_PATH, parseManifest, type WasmResolver } from './bundle-manifest.ts';
export { dataPathOf, normalizeBundlePath } from './bundle-path.ts';
export { type ReadBundle, type ReadBundleOptions, readBundleArchive } from './bundle-reader.ts';
export { collapseRoots, rootContains, rootsContain, rootsOverlap } from './bundle-roots.ts';
export { type BundleContent, buildBundleArchive, deriveRoots, WASM_MODULE_PATH } from './bundle-writer.ts';
export { canonicalJson, isJsonObject } from './canonical-json.ts';
export { sha256Hex } from './digest.ts';
export { entrypointRef, normalizeEntrypoint, normalizeEntrypoints } from './entrypoint.ts';
export { pathEscape, regoPackagePath } from './rego-package.ts';
