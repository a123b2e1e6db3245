// The PKCS#11 worker thread's entry point (see "The token is driven from a worker
// thread" in worker-host.ts). Its own file, so that the thread loads the PKCS#11 code
// only — in the bundle (scripts/bundle.js) the rest of the PKCS#11 code is part of the CLI's file.
import { serveWorker } from './worker-host.js';

serveWorker();
