// scripts/tools.mjs: the pinned tools it hands out, its symlink hydration, and its CLI's errors.
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ensureKafka,
  ensureOpa,
  ensurePostgresBinaries,
  hydratePostgresSymlinks,
  KAFKA_VERSION,
  OPA_VERSION,
} from '../../../scripts/tools.mjs';
import { opaBin } from '../src/index.ts';

const run = promisify(execFile);
const toolsCli = resolve(import.meta.dirname, '../../../scripts/tools.mjs');

describe('provisioned tools', () => {
  it('opa: the global setup exported the binary that ensureOpa() finds, at the pinned version', async () => {
    expect(await ensureOpa()).toBe(opaBin());
    const { stdout } = await run(opaBin(), ['version']);
    expect(stdout).toContain(`Version: ${OPA_VERSION}`);
  });

  it('postgres: the bin directory holds runnable initdb and postgres', async () => {
    const binDir = await ensurePostgresBinaries();
    for (const program of ['initdb', 'postgres']) {
      const { stdout } = await run(join(binDir, program), ['--version']);
      expect(stdout).toMatch(/\(PostgreSQL\) 17\./);
    }
  });

  it('kafka: the classpath points at the pinned broker jars', async () => {
    const kafka = await ensureKafka();
    expect(kafka.version).toBe(KAFKA_VERSION);
    expect(kafka.classpath.endsWith('*')).toBe(true);
  });
});

describe('hydratePostgresSymlinks', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it.each([
    { state: 'missing', prepare: async () => {}, made: 1, link: 'libpq.so.5.17' },
    {
      state: 'already right',
      prepare: (path: string) => symlink('libpq.so.5.17', path),
      made: 0,
      link: 'libpq.so.5.17',
    },
    {
      state: 'pointing elsewhere',
      prepare: (path: string) => symlink('libold.so', path),
      made: 1,
      link: 'libpq.so.5.17',
    },
    { state: 'a real file', prepare: (path: string) => writeFile(path, 'copy'), made: 0, link: undefined },
  ])('handles a link that is $state', async ({ prepare, made, link }) => {
    const packageDir = await mkdtemp(join(tmpdir(), 'portcullis-hydrate-'));
    dirs.push(packageDir);
    await mkdir(join(packageDir, 'native', 'lib'), { recursive: true });
    await writeFile(join(packageDir, 'native', 'lib', 'libpq.so.5.17'), 'library');
    await writeFile(
      join(packageDir, 'native', 'pg-symlinks.json'),
      JSON.stringify([{ source: 'native/lib/libpq.so.5.17', target: 'native/lib/libpq.so.5' }]),
    );
    const linkPath = join(packageDir, 'native', 'lib', 'libpq.so.5');
    await prepare(linkPath);

    expect(await hydratePostgresSymlinks(packageDir)).toBe(made);
    expect(await hydratePostgresSymlinks(packageDir)).toBe(0);
    if (link === undefined) expect((await lstat(linkPath)).isFile()).toBe(true);
    else expect(await readlink(linkPath)).toBe(link);
  });
});

describe('tools CLI', () => {
  it.each([
    {
      args: ['opa'],
      stdout: new RegExp(`^opa\\s+${OPA_VERSION.replaceAll('.', '\\.')}\\s+/\\S+/opa\\s+\\(\\d`),
    },
    {
      args: ['opa', 'kafka'],
      stdout: new RegExp(`^opa\\s.*\\nkafka\\s+${KAFKA_VERSION.replaceAll('.', '\\.')}\\s`),
    },
  ])('prints one line per tool asked for: $args', async ({ args, stdout }) => {
    const result = await run(process.execPath, [toolsCli, ...args]);
    expect(result.stdout).toMatch(stdout);
    expect(result.stdout.trimEnd().split('\n')).toHaveLength(args.length);
  });

  it('names the known tools when asked for an unknown one', async () => {
    await expect(run(process.execPath, [toolsCli, 'opa', 'zookeeper'])).rejects.toMatchObject({
      code: 1,
      stderr: 'tools: unknown tool zookeeper; known: opa, postgres, kafka, helm\n',
    });
  });

  it('rejects an OPA_BIN that is not an executable file, naming it', async () => {
    await expect(
      run(process.execPath, [toolsCli, 'opa'], { env: { ...process.env, OPA_BIN: '/nonexistent/opa' } }),
    ).rejects.toMatchObject({
      code: 1,
      stderr: 'tools: OPA_BIN is set to /nonexistent/opa, which is not an executable file.\n',
    });
  });
});
