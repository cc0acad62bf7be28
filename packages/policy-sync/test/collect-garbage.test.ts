// The collection PolicySync asks for after a swap: it must really free what the swap left dead.
import { waitFor } from '@portcullis/testkit';
import { describe, it } from 'vitest';
import { GarbageCollector } from '../src/collect-garbage.ts';

describe('GarbageCollector', () => {
  it('frees an unreachable object after a swap, without waiting for V8 to decide to', async () => {
    let collected = false;
    const registry = new FinalizationRegistry(() => {
      collected = true;
    });
    (() => {
      registry.register({ archive: new Uint8Array(1024) }, 'archive');
    })();
    const collector = new GarbageCollector(0);
    collector.afterSwap();
    collector.afterSwap();
    await waitFor(() => collected, { message: 'the dropped archive to be collected' });
    collector.stop();
  });
});
