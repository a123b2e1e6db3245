// Preloaded (`node --expose-gc --import bench/gc-probe.js …`) into the daemon by
// `npm run bench:pod-memory`: each SIGUSR2 runs a full garbage collection and
// writes V8's used heap size after it (bytes, JSON) to $BENCH_GC_OUT (via a temp
// file and a rename, so a reader never sees half of it). Without it, RSS after a
// pause still holds garbage V8 had no reason yet to collect.
import { renameSync, writeFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';

const out = process.env.BENCH_GC_OUT;
if (out && typeof globalThis.gc === 'function') {
  let n = 0;
  process.on('SIGUSR2', () => {
    globalThis.gc();
    const s = getHeapStatistics();
    writeFileSync(`${out}.tmp`, JSON.stringify({ n: ++n, usedHeapBytes: s.used_heap_size, totalHeapBytes: s.total_heap_size, mallocedBytes: s.malloced_memory, externalBytes: process.memoryUsage().external, arrayBuffersBytes: process.memoryUsage().arrayBuffers }));
    renameSync(`${out}.tmp`, out);
  });
}
