// Starts a single-node Kafka (KRaft, combined broker + controller) on 127.0.0.1 from the jars that tools.mjs provisions.
//
// Layout of `dataDir`: server.properties and log4j2.properties (rewritten on every start), logs/ (the
// partitions and the metadata log), kafka.log (Kafka's own log) and kafka.out (the JVM's stdout and
// stderr). Nothing goes to this process's output.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import kafkajs from 'kafkajs';
import { ensureKafka } from '../tools.mjs';
import { freePorts } from './free-port.mjs';
import { guardChild } from './orphan-guard.mjs';
import { fileTail, waitForExit } from './server-process.mjs';

const FORMAT_STAMP = '.portcullis-formatted';
const NODE_ID = 1;

/** A Kafka cluster id: 16 random bytes, base64url without padding (Kafka's Uuid format). */
function clusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    // Kafka's own generator avoids ids that start with '-' because they read as command-line flags.
    if (!id.startsWith('-')) return id;
  }
}

function serverProperties({ logsDir, port, controllerPort, overrides }) {
  const properties = {
    'process.roles': 'broker,controller',
    'node.id': NODE_ID,
    // A static voter set, not `format --standalone`: the voters are read from this file on every
    // start instead of being frozen into the metadata log, so the same dataDir can be started
    // again on other ports.
    'controller.quorum.voters': `${NODE_ID}@127.0.0.1:${controllerPort}`,
    listeners: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    'advertised.listeners': `PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': logsDir,
    'num.partitions': 1,
    'default.replication.factor': 1,
    'min.insync.replicas': 1,
    // One broker: every internal topic must make do with one replica.
    'offsets.topic.replication.factor': 1,
    'offsets.topic.num.partitions': 1,
    'transaction.state.log.replication.factor': 1,
    'transaction.state.log.min.isr': 1,
    'transaction.state.log.num.partitions': 1,
    'share.coordinator.state.topic.replication.factor': 1,
    'share.coordinator.state.topic.min.isr': 1,
    // Consumers join immediately instead of waiting 3 s for more members.
    'group.initial.rebalance.delay.ms': 0,
    'auto.create.topics.enable': true,
    // After a crash (kill()), the controller keeps the old incarnation registered until its session
    // expires, and the restarted broker waits for that: 9 s by default, 2.5 s here.
    'broker.heartbeat.interval.ms': 500,
    'broker.session.timeout.ms': 2_500,
    ...overrides,
  };
  return `${Object.entries(properties)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')}\n`;
}

function log4jProperties(logFile) {
  return `# Written by scripts/lib/kafka.mjs: Kafka logs to a file, never to the test output.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${logFile}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
`;
}

function runJava(args, outFile) {
  return new Promise((resolve, reject) => {
    const fd = openSync(outFile, 'a');
    let child;
    try {
      child = spawn('java', args, { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

/** Resolves once the broker answers a metadata request; rejects as soon as the JVM is gone. */
async function waitUntilReady({ child, brokers, files, timeoutMs }) {
  const exited = new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const kafka = new kafkajs.Kafka({
    clientId: 'portcullis-launcher',
    brokers,
    logLevel: kafkajs.logLevel.NOTHING,
    connectionTimeout: 1_000,
    // Short: whatever holds the port may accept connections and never answer.
    requestTimeout: 2_000,
    retry: { retries: 0 },
  });
  const attempt = async () => {
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return { ready: true };
    } catch (error) {
      return { ready: false, error };
    } finally {
      await admin.disconnect().catch(() => {});
    }
  };
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    // Each attempt races the JVM's exit, so a broker that dies at start is reported at once.
    const outcome = await Promise.race([attempt(), exited.then((exit) => ({ exit }))]);
    if (outcome.exit) {
      throw new Error(
        `Kafka exited during start (code ${outcome.exit.code}, signal ${outcome.exit.signal}).\n` +
          `${files.out} ends with:\n${await fileTail(files.out)}\n${files.log} ends with:\n${await fileTail(files.log)}`,
      );
    }
    if (outcome.ready) return;
    lastError = outcome.error;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(
    `Kafka did not answer on ${brokers.join(',')} within ${timeoutMs} ms (last error: ${lastError?.message}); ` +
      `${files.log} ends with:\n${await fileTail(files.log)}`,
  );
}

/**
 * Starts a single-node Kafka on 127.0.0.1 and resolves once it serves metadata. `dataDir` is formatted
 * on first use and kept on later starts. `port`/`controllerPort` 0 or absent pick free ports, chosen
 * once: `stop()` followed by `start()` (or `restart()`) brings the broker back on the same address
 * with its data, which is how tests simulate an outage. `kill()` is a crash (SIGKILL).
 * `properties` are extra or overriding server.properties entries.
 */
export async function startKafka({
  dataDir,
  port = 0,
  controllerPort = 0,
  heapMb = 512,
  readyTimeoutMs = 90_000,
  properties = {},
}) {
  if (!dataDir) throw new Error('startKafka: dataDir is required');
  const { classpath } = await ensureKafka();
  const logsDir = join(dataDir, 'logs');
  const files = {
    config: join(dataDir, 'server.properties'),
    log4j: join(dataDir, 'log4j2.properties'),
    log: join(dataDir, 'kafka.log'),
    out: join(dataDir, 'kafka.out'),
  };
  let ports;
  let brokers;
  async function choosePorts() {
    const [freeA, freeB] = await freePorts(2);
    ports = { port: port || freeA, controllerPort: controllerPort || freeB };
    brokers = [`127.0.0.1:${ports.port}`];
    await writeFile(files.config, serverProperties({ logsDir, ...ports, overrides: properties }));
  }
  const jvm = [
    `-Xmx${heapMb}m`,
    '-Xms64m',
    // Few GC threads and a C1-only JIT: a faster, lighter start on a 2-core machine; a test broker or
    // the one-machine stack never needs peak throughput.
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${files.log4j}`,
    // Kafka's scripts set this; without it the log directory defaults to the working directory.
    `-Dkafka.logs.dir=${dataDir}`,
    '-cp',
    classpath,
  ];

  await mkdir(dataDir, { recursive: true });
  await choosePorts();
  await writeFile(files.log4j, log4jProperties(files.log));

  const formatted = await stat(join(dataDir, FORMAT_STAMP)).then(
    () => true,
    () => false,
  );
  if (!formatted) {
    // Whatever an interrupted format left behind is not trustworthy.
    await rm(logsDir, { recursive: true, force: true });
    const code = await runJava(
      [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId(), '-c', files.config],
      files.out,
    );
    if (code !== 0) {
      throw new Error(
        `formatting Kafka storage in ${logsDir} failed (exit ${code}):\n${await fileTail(files.out)}`,
      );
    }
    await writeFile(join(dataDir, FORMAT_STAMP), `${new Date().toISOString()}\n`);
  }

  let child;
  async function start() {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const fd = openSync(files.out, 'a');
    try {
      child = spawn('java', [...jvm, 'kafka.Kafka', files.config], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    const started = child;
    await new Promise((resolve, reject) => {
      started.once('spawn', resolve);
      started.once('error', reject);
    });
    started.once('exit', guardChild(started.pid, 'TERM'));
    try {
      await waitUntilReady({ child: started, brokers, files, timeoutMs: readyTimeoutMs });
    } catch (error) {
      started.kill('SIGKILL');
      await waitForExit(started, 10_000);
      throw error;
    }
  }

  async function stop(signal = 'SIGTERM') {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    // A clean shutdown of one combined node takes a second or two; give it generous room.
    if (!(await waitForExit(child, 30_000))) {
      child.kill('SIGKILL');
      await waitForExit(child, 10_000);
    }
  }

  // A port found free can be taken by someone else before the JVM binds it, seconds later; when we
  // chose the ports, choose again. (A restart() keeps its ports: clients expect the same address.)
  for (let attempt = 1; ; attempt += 1) {
    try {
      await start();
      break;
    } catch (error) {
      const portTaken = /Address already in use/.test(error?.message ?? '');
      if (!portTaken || (port && controllerPort) || attempt >= 3) throw error;
      await choosePorts();
    }
  }
  return {
    brokers,
    port: ports.port,
    controllerPort: ports.controllerPort,
    dataDir,
    logFile: files.log,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    start,
    stop: () => stop('SIGTERM'),
    kill: () => stop('SIGKILL'),
    async restart() {
      await stop('SIGTERM');
      await start();
    },
  };
}
