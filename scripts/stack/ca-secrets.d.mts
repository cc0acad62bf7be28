// Types of ca-secrets.mjs, for the TypeScript tests that reuse it.
export declare const CA_KEY_ENCRYPTION_KEY_FILE: string;
export declare const DEV_ISSUER_KEY_FILE: string;
export declare const DEV_ISSUER_JWKS_FILE: string;
export declare function ensureCaSecrets(home: string): { keyEncryptionKey: string; jwksFile: string };
