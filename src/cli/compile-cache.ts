// Node's on-disk compile cache (module.enableCompileCache, Node 22.1+): V8 code caches
// for the modules a command loads, instead of parsing and compiling the ~200 files of
// `serve` (or `credential-process`, which SDKs run for every credential fetch) at every
// start. Only in a directory that is the user's own — a code cache is code, so never a
// shared one like /tmp (Node's default). NODE_COMPILE_CACHE, when set, is Node's own
// switch and wins; NODE_DISABLE_COMPILE_CACHE turns it off. Where the directory cannot be
// created (a read-only root file system in a container), nothing happens. Nor when the
// directory is not this user's own: under `sudo -E` HOME is the invoking user's, and
// root must not run code cached in a directory another user can write.
import { mkdirSync, statSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { join, relative, sep } from 'node:path';

/** The cache directory for an environment, and the directory it is under (from the environment), or undefined for none. */
function cacheLocation(env: NodeJS.ProcessEnv): { base: string; dir: string } | undefined {
  if (env.NODE_DISABLE_COMPILE_CACHE || env.NODE_COMPILE_CACHE !== undefined) return undefined;
  // systemd's CacheDirectory= (several are separated by ':').
  if (env.CACHE_DIRECTORY) {
    const base = env.CACHE_DIRECTORY.split(':')[0]!;
    return { base, dir: join(base, 'compile-cache') };
  }
  if (env.XDG_CACHE_HOME?.startsWith('/')) return { base: env.XDG_CACHE_HOME, dir: join(env.XDG_CACHE_HOME, 'rolesanywhere-credentiald', 'compile-cache') };
  if (env.HOME?.startsWith('/') && env.HOME !== '/') return { base: env.HOME, dir: join(env.HOME, '.cache', 'rolesanywhere-credentiald', 'compile-cache') };
  return undefined;
}

/** The cache directory for an environment, or undefined for none. */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  return cacheLocation(env)?.dir;
}

/** `base` and each directory below it down to `dir` belong to this effective user and are not writable by every user. */
function ownDirectories(base: string, dir: string, euid: number): boolean {
  let path = base;
  for (const part of ['', ...relative(base, dir).split(sep)]) {
    path = part ? join(path, part) : path;
    const st = statSync(path);
    if (st.uid !== euid || (st.mode & 0o002) !== 0) return false;
  }
  return true;
}

/** Enables the cache for this process when there is a directory of its own for it. Never throws. */
export function enableCompileCache(env: NodeJS.ProcessEnv = process.env): void {
  const where = cacheLocation(env);
  const enable = (nodeModule as { enableCompileCache?: (dir: string) => unknown }).enableCompileCache;
  if (where === undefined || typeof enable !== 'function') return;
  try {
    const euid = process.geteuid?.();
    // Checked before creating anything (nothing is written into another user's home) and after.
    if (euid !== undefined && statSync(where.base).uid !== euid) return;
    // 0700 on every directory created (e.g. ~/.cache/rolesanywhere-credentiald, which also
    // holds the default token file); Node would create them with the umask's mode.
    mkdirSync(where.dir, { recursive: true, mode: 0o700 });
    if (euid !== undefined && !ownDirectories(where.base, where.dir, euid)) return;
    enable(where.dir);
  } catch {
    // A cache is an optimisation only.
  }
}
