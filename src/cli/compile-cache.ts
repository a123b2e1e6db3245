// Node's on-disk compile cache (module.enableCompileCache, Node 22.1+): V8 code caches
// for the modules a command loads, instead of parsing and compiling the ~200 files of
// `serve` (or `credential-process`, which SDKs run for every credential fetch) at every
// start. Only in a directory that is the user's own — a code cache is code, so never a
// shared one like /tmp (Node's default). NODE_COMPILE_CACHE, when set, is Node's own
// switch and wins; NODE_DISABLE_COMPILE_CACHE turns it off. Where the directory cannot be
// created (a read-only root file system in a container), nothing happens.
import { mkdirSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join } from 'node:path';

/** The cache directory for an environment, or undefined for none. */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE || env.NODE_COMPILE_CACHE !== undefined) return undefined;
  // systemd's CacheDirectory= (several are separated by ':').
  if (env.CACHE_DIRECTORY) return join(env.CACHE_DIRECTORY.split(':')[0]!, 'compile-cache');
  if (env.XDG_CACHE_HOME?.startsWith('/')) return join(env.XDG_CACHE_HOME, 'rolesanywhere-credentiald', 'compile-cache');
  if (env.HOME?.startsWith('/') && env.HOME !== '/') return join(env.HOME, '.cache', 'rolesanywhere-credentiald', 'compile-cache');
  return undefined;
}

/** Enables the cache for this process when there is a directory for it. Never throws. */
export function enableCompileCache(env: NodeJS.ProcessEnv = process.env): void {
  const dir = compileCacheDir(env);
  const enable = (nodeModule as { enableCompileCache?: (dir: string) => unknown }).enableCompileCache;
  if (dir === undefined || typeof enable !== 'function') return;
  try {
    // 0700 on every directory created (e.g. ~/.cache/rolesanywhere-credentiald, which also
    // holds the default token file); Node would create them with the umask's mode.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    enable(dir);
  } catch {
    // A cache is an optimisation only.
  }
}
