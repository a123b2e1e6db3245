// PKCS#11 modules: one loaded, initialized instance per library path, shared by every key on it
// (C_Initialize is per process). Calls into a module are serialized.
import { statSync } from 'node:fs';
import { UserError } from '../../../errors.js';
import { fileError } from '../../files.js';
import { redactPkcs11Uri, type Pkcs11Uri } from '../../pkcs11-uri.js';
import type { KeySourceOptions } from '../../types.js';
import { type Pkcs11Api, ck, ckr, loadBinding } from './binding.js';

type Pkcs11Options = KeySourceOptions;
/** The default module: p11-kit's proxy, which loads every module registered with p11-kit. */
export function defaultPkcs11Lib(): string {
  return process.platform === 'darwin' ? 'p11-kit-proxy.dylib' : 'p11-kit-proxy.so';
}

export class Module {
  readonly api: Pkcs11Api;
  /** Bumped by every reset: sessions and handles from an older generation are gone. */
  generation = 0;
  private initialized = false;
  private queue: Promise<unknown> = Promise.resolve();
  users = 0;

  constructor(
    readonly path: string,
    readonly origin: string,
  ) {
    const lib = loadBinding();
    this.api = new lib.PKCS11();
    try {
      this.api.load(path);
    } catch (err) {
      const why = (err as Error).message.split('\n')[0];
      if (path === defaultPkcs11Lib()) {
        throw new UserError(
          `no PKCS#11 module given and p11-kit's proxy module (${path}) could not be loaded (${why}); install p11-kit ` +
            '(Debian/Ubuntu: p11-kit-modules) or name the module with --pkcs11-lib PATH (YAML pkcs11Lib)',
          { reason: 'pkcs11_module', cause: err },
        );
      }
      throw new UserError(`${origin} ${path}: could not be loaded as a PKCS#11 module (${why}); give the module's .so file`, {
        reason: 'pkcs11_module',
        cause: err,
      });
    }
  }

  /** Runs `fn` after every earlier call on this module has finished. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  init(): void {
    if (this.initialized) return;
    try {
      this.api.C_Initialize({ flags: ck('CKF_OS_LOCKING_OK') });
    } catch (err) {
      if (ckr(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new UserError(`PKCS#11 module ${this.path}: C_Initialize failed (${ckr(err) ?? (err as Error).message}); check the module's configuration`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
    }
    this.initialized = true;
  }

  /** Forgets every session (finalizing the module) so the next use starts from scratch. */
  reset(): void {
    if (this.initialized) {
      try {
        this.api.C_Finalize();
      } catch {
        // Already gone: nothing to release.
      }
    }
    this.initialized = false;
    this.generation++;
  }
}

const modules = new Map<string, Module>();

export function moduleFor(path: string, origin: string): Module {
  let m = modules.get(path);
  if (!m) {
    m = new Module(path, origin);
    modules.set(path, m);
  }
  return m;
}

/**
 * One user fewer; the last one finalizes the module (its sessions close, the
 * token logs out). The library stays loaded: some modules do not survive
 * being unloaded and loaded again in one process.
 */
export function releaseModule(m: Module): void {
  m.users--;
  if (m.users <= 0) {
    m.users = 0;
    m.reset();
  }
}

/** Which module a URI uses and how to name it in messages. */
export function resolveModule(uri: Pkcs11Uri, spec: string, options: Pkcs11Options): { path: string; origin: string } {
  let path: string;
  let origin: string;
  if (options.pkcs11Lib !== undefined) {
    path = options.pkcs11Lib;
    origin = '--pkcs11-lib';
  } else if (uri.modulePath !== undefined) {
    path = uri.modulePath;
    origin = `module-path in ${redactPkcs11Uri(spec)}:`;
  } else if (uri.moduleName !== undefined) {
    throw new UserError(`${redactPkcs11Uri(spec)}: module-name is not supported; name the module's file with --pkcs11-lib PATH or module-path=`, {
      reason: 'pkcs11_uri',
    });
  } else {
    return { path: defaultPkcs11Lib(), origin: 'default module' };
  }
  // A bare file name is left to the dynamic linker's search path; a path must exist.
  if (path.includes('/')) {
    try {
      if (!statSync(path).isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new UserError(`${origin} ${path}: PKCS#11 module not found; check the path (e.g. /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so)`, {
          reason: 'pkcs11_module',
          cause: err,
        });
      }
      if (code === 'EISDIR') throw new UserError(`${origin} ${path}: is a directory, expected the PKCS#11 module's .so file`, { reason: 'pkcs11_module' });
      throw fileError(`${origin} ${path}`, 'private key', err);
    }
  }
  return { path, origin };
}

