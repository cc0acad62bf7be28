// The environment variables through which the global setup hands shared resources to test workers.
//
// Environment variables rather than vitest's inject(): forked workers inherit the environment that
// the global setup leaves behind (vitest builds each worker's env from process.env after global setup
// runs), and code outside a test file (the stack launcher, a service started by a test) can read them too.

/** Superuser URL of the Postgres server shared by the whole test run. */
export const PG_URL_ENV = 'PORTCULLIS_TEST_PG_URL';
/** Directory for this test run's throwaway files; removed when the run ends. */
export const TMP_ENV = 'PORTCULLIS_TEST_TMP';
/** Path of the opa binary (also honoured by scripts/tools.mjs). */
export const OPA_BIN_ENV = 'OPA_BIN';

function required(name: string, hint: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${hint}`);
  return value;
}

/** Path of the provisioned opa binary. */
export function opaBin(): string {
  return required(
    OPA_BIN_ENV,
    'run the tests through vitest (the testkit global setup provisions opa), or point it at an opa binary',
  );
}

/** Superuser URL of the shared test Postgres server. */
export function testPostgresUrl(): string {
  return required(
    PG_URL_ENV,
    'run the tests through vitest (the testkit global setup starts Postgres), or set it to a superuser URL',
  );
}
