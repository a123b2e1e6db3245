// Preloaded (`node --import bench/alloc-probe.js …`) into a server by `npm run
// bench:allocations`: the first SIGUSR2 starts V8's sampling heap profiler, counting
// objects that garbage collection has already freed too (so it sees every allocation,
// not only what survives); the next SIGUSR2 stops it and writes the profile (JSON) to
// $BENCH_ALLOC_OUT (via a temp file and a rename, so a reader never sees half of it).
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const out = process.env.BENCH_ALLOC_OUT;
if (out) {
  const session = new Session();
  session.connect();
  let sampling = false;
  process.on('SIGUSR2', async () => {
    if (!sampling) {
      sampling = true;
      await session.post('HeapProfiler.startSampling', { samplingInterval: Number(process.env.BENCH_ALLOC_INTERVAL ?? 2048), includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      return;
    }
    sampling = false;
    const { profile } = await session.post('HeapProfiler.stopSampling');
    writeFileSync(`${out}.tmp`, JSON.stringify(profile));
    renameSync(`${out}.tmp`, out);
  });
}
