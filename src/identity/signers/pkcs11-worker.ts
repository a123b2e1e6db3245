// The PKCS#11 worker thread's entry point (see "The token is driven from a worker
// thread" in pkcs11.ts). Its own file, so that the thread loads the PKCS#11 code
// only — in the bundle (scripts/bundle.js) pkcs11.ts is part of the CLI's file.
import { serveWorker } from './pkcs11.js';

serveWorker();
