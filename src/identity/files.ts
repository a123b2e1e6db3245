import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { UserError } from '../errors.js';
import type { IdentitySource } from './types.js';

/** What a file is for, used in messages ("certificate file", "private key file"…). */
export type FileRole = 'certificate' | 'private key' | 'intermediates' | 'CA certificate' | 'password' | 'JWKS' | 'bearer token' | 'certificate request';

function whoAmI(): string {
  const uid = process.getuid?.();
  if (uid === undefined) return 'this process';
  try {
    return `user ${userInfo().username} (uid ${uid})`;
  } catch {
    return `uid ${uid}`;
  }
}

/** Converts a filesystem error into a one-line UserError naming the file and the fix. */
export function fileError(path: string, role: FileRole, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new UserError(`${path}: ${role} file not found; check the path`, { reason: 'file_not_found', cause: err });
    case 'EACCES':
    case 'EPERM':
      return new UserError(`${path}: permission denied reading the ${role} file; make it readable by ${whoAmI()}`, {
        reason: 'file_permission',
        cause: err,
      });
    case 'EISDIR':
      return new UserError(`${path}: is a directory, expected the ${role} file`, { reason: 'file_is_directory', cause: err });
    case 'ENOTDIR':
      return new UserError(`${path}: a parent of this path is not a directory; check the ${role} file path`, {
        reason: 'file_not_found',
        cause: err,
      });
    default:
      return new UserError(`${path}: cannot read the ${role} file (${code ?? 'unknown error'})`, { reason: 'file_unreadable', cause: err });
  }
}

/**
 * Reads a whole input file; a missing, unreadable or empty file is a UserError.
 * With `maxBytes`, a larger file is refused from its size, before it is read.
 */
export async function readInputFile(path: string, role: FileRole, opts: { maxBytes?: number } = {}): Promise<Buffer> {
  let data: Buffer;
  try {
    const tooLarge = (size: number) =>
      new UserError(`${path}: ${role} file is ${size} bytes, more than the ${opts.maxBytes} a ${role} can be; check the path`, { reason: 'file_too_large' });
    if (opts.maxBytes !== undefined) {
      const size = (await stat(path)).size;
      if (size > opts.maxBytes) throw tooLarge(size);
    }
    data = await readFile(path);
    // (A file that grew between stat and read, or a pipe, is caught here.)
    if (opts.maxBytes !== undefined && data.length > opts.maxBytes) throw tooLarge(data.length);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw fileError(path, role, err);
  }
  if (data.length === 0 || (role !== 'password' && data.toString('latin1').trim() === '')) {
    throw new UserError(`${path}: ${role} file is empty`, { reason: 'file_empty' });
  }
  return data;
}

/**
 * Reads a password file (--key-password-file, keyPasswordFile,
 * --pfx-password-file): the whole content minus one trailing newline (LF or
 * CRLF), so `echo secret > file` works. An empty password is allowed. `flag`,
 * when given, leads the error message (`--pfx-password-file FILE: …`). The
 * content never appears in a message.
 */
export async function readPasswordFile(path: string, flag?: string): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw fileError(flag ? `${flag} ${path}` : path, 'password', err);
  }
  return withoutFinalNewline(data.toString('utf8'));
}

/** `text` minus one trailing newline (LF or CRLF), as `echo secret > file` and `openssl rand -hex 16 > file` write it. */
export function withoutFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

/**
 * Cheap content hash of the identity's files (sha256 over each file's bytes,
 * in the order certificate, private key, intermediates). Never throws: an
 * unreadable file contributes a marker with its error code, so a file that
 * disappears mid-rotation changes the fingerprint too. The password is not
 * part of it.
 */
export async function identityFingerprint(source: IdentitySource): Promise<string> {
  const hash = createHash('sha256');
  const parts: Array<[string, string | undefined]> = [
    ['certificate', source.certificate],
    ['privateKey', source.privateKey],
    ['intermediates', source.intermediates],
  ];
  for (const [name, path] of parts) {
    hash.update(`${name}\0`);
    if (!path) {
      hash.update('none\0');
      continue;
    }
    try {
      const data = await readFile(path);
      hash.update(`${data.length}\0`).update(data);
    } catch (err) {
      hash.update(`error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}\0`);
    }
  }
  return hash.digest('hex');
}
