// ThreadPool: tasks spread over threads, state reaches every thread (and replacements), errors keep their fields.
import { waitFor } from '@portcullis/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { ThreadPool } from '../src/threads/thread-pool.ts';
import type { PrefixTask } from './fixtures/prefix-thread.ts';

const MODULE = new URL('./fixtures/prefix-thread.ts', import.meta.url);
type Pool = ThreadPool<{ prefix: string }, PrefixTask, { text: string; thread: number }>;
let pool: Pool | undefined;

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

describe('ThreadPool', () => {
  it('gives every thread the state and sends each task to the thread with the fewest in flight', async () => {
    pool = new ThreadPool(MODULE, { size: 2 });
    const answers0 = await pool.configure('p', { prefix: 'v1' });
    // Each thread answered once.
    expect(new Set(answers0).size).toBe(2);
    const slow = pool.run({ op: 'slow', ms: 300 });
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => pool!.run({ op: 'echo', value: `${i}` })),
    );
    expect(answers.map((a) => a.text)).toEqual(['p=v1:0', 'p=v1:1', 'p=v1:2', 'p=v1:3', 'p=v1:4', 'p=v1:5']);
    const busy = (await slow).thread;
    // The first quick task went to the thread without the slow one; then in-flight counts tie and alternate.
    expect(answers[0]!.thread).not.toBe(busy);
    expect(new Set(answers.map((a) => a.thread)).size).toBe(2);
    // Not awaited: tasks sent after the call already see the state.
    void pool.configure('p', { prefix: 'v2' });
    void pool.configure('q', { prefix: 'w' });
    const after = await Promise.all([pool.run({ op: 'slow', ms: 50 }), pool.run({ op: 'echo', value: 'x' })]);
    expect(after.map((a) => a.text)).toEqual(['p=v2,q=w:slow', 'p=v2,q=w:x']);
    expect(after[0]!.thread).not.toBe(after[1]!.thread);
  });

  it('rejects with the error the task threw, its own fields given to reviveError', async () => {
    pool = new ThreadPool(MODULE, { size: 1 });
    await expect(pool.run({ op: 'fail' })).rejects.toMatchObject({
      name: 'RangeError',
      message: 'no such thing',
    });
    await pool.close();
    const revived: unknown[] = [];
    pool = new ThreadPool(MODULE, {
      size: 1,
      reviveError: (error) => {
        revived.push(error);
        return new Error(`revived ${error.fields.code}`);
      },
    });
    await expect(pool.run({ op: 'fail' })).rejects.toThrow('revived thing_missing');
    expect(revived).toEqual([
      { name: 'RangeError', message: 'no such thing', fields: { code: 'thing_missing', status: 404 } },
    ]);
    // The thread survives a failed task.
    await expect(pool.run({ op: 'echo', value: 'ok' })).resolves.toMatchObject({ text: '(none):ok' });
  });

  it('fails the tasks of a thread that dies and replaces it with one that holds the last state of every key', async () => {
    pool = new ThreadPool(MODULE, { size: 2 });
    await pool.configure('p', { prefix: 'old' });
    await pool.configure('q', { prefix: 'kept' });
    await pool.configure('p', { prefix: 'new' });
    const before = pool.threads();
    await expect(pool.run({ op: 'exit' })).rejects.toThrow('pool thread exited with code 3');
    await waitFor(() => pool!.ready === 2 && pool!.threads().some((t) => !before.includes(t)), {
      message: 'a ready replacement thread',
    });
    // Keep one thread busy so the next task must go to the other: both answer with the state.
    const slow = pool.run({ op: 'slow', ms: 200 });
    const quick = await pool.run({ op: 'echo', value: 'q' });
    const slowAnswer = await slow;
    // The replacement holds the last state of every key.
    expect([slowAnswer.text, quick.text]).toEqual(['p=new,q=kept:slow', 'p=new,q=kept:q']);
    expect(quick.thread).not.toBe(slowAnswer.thread);
  });

  it('rejects a state a thread refuses, and a replacement gets the last state every thread took', async () => {
    pool = new ThreadPool(MODULE, { size: 2 });
    await pool.configure('p', { prefix: 'good' });
    await expect(pool.configure('p', { prefix: 'bad' })).rejects.toThrow('bad prefix');
    await expect(pool.run({ op: 'echo', value: 'x' })).resolves.toMatchObject({ text: 'p=good:x' });
    const before = pool.threads();
    await expect(pool.run({ op: 'exit' })).rejects.toThrow('exited with code 3');
    await waitFor(() => pool!.ready === 2 && pool!.threads().some((t) => !before.includes(t)), {
      message: 'a ready replacement thread',
    });
    const slow = pool.run({ op: 'slow', ms: 200 });
    const quick = await pool.run({ op: 'echo', value: 'y' });
    expect([(await slow).text, quick.text]).toEqual(['p=good:slow', 'p=good:y']);
  });

  it('gives reviveError the fields a structured clone keeps, objects included', async () => {
    const revived: unknown[] = [];
    pool = new ThreadPool(MODULE, {
      size: 1,
      reviveError: (error) => {
        revived.push(error.fields);
        return new Error(error.message);
      },
    });
    await expect(pool.configure('k', { prefix: 'bad' })).rejects.toThrow('bad prefix');
    expect(revived).toEqual([{ details: { key: 'k', at: [1, 2] } }]);
  });

  it('sends each thread, replacements included, its own message from stateMessage, transferring its buffers', async () => {
    const sent: ArrayBuffer[] = [];
    const transferring = new ThreadPool<{ prefix: string }, PrefixTask, { text: string; thread: number }>(
      MODULE,
      {
        size: 2,
        stateMessage: (state) => {
          const bytes = new TextEncoder().encode(state.prefix).buffer as ArrayBuffer;
          sent.push(bytes);
          return { message: { bytes }, transfer: [bytes] };
        },
      },
    );
    pool = transferring as unknown as Pool;
    await transferring.configure('p', { prefix: 'moved' });
    expect(sent).toHaveLength(2);
    // Transferred, not cloned: the sender's buffers are detached.
    expect(sent.map((b) => b.byteLength)).toEqual([0, 0]);
    const before = transferring.threads();
    await expect(transferring.run({ op: 'exit' })).rejects.toThrow('exited with code 3');
    await waitFor(() => transferring.ready === 2 && transferring.threads().some((t) => !before.includes(t)), {
      message: 'a ready replacement thread',
    });
    expect(sent).toHaveLength(3);
    const slow = transferring.run({ op: 'slow', ms: 200 });
    const quick = await transferring.run({ op: 'echo', value: 'z' });
    expect([(await slow).text, quick.text]).toEqual(['p=moved:slow', 'p=moved:z']);
  });

  it('refuses tasks once closed', async () => {
    pool = new ThreadPool(MODULE, { size: 1 });
    await pool.close();
    await expect(pool.run({ op: 'echo', value: 'late' })).rejects.toThrow('the thread pool is closed');
  });
});
