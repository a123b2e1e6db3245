import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
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

/** systemd allocates DynamicUser= uids from 61184..65519 (systemd.exec(5)); they change between starts. */
const DYNAMIC_UIDS = [61184, 65519] as const;

/** Names of this process's supplementary groups (other than its primary group), from /etc/group. */
function supplementaryGroups(): string[] {
  const gids = new Set((process.getgroups?.() ?? []).filter((g) => g !== process.getgid?.()));
  if (gids.size === 0) return [];
  try {
    return readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 3 && gids.has(Number(f[2])))
      .map((f) => f[0]!);
  } catch {
    return [];
  }
}

/**
 * How to give this process access to `target` (chmod `bit`: r for a file, x for a
 * directory): for a systemd DynamicUser, through its group, since its uid changes
 * with every start; else to the user.
 */
export function accessFix(target: string, bit: 'r' | 'x'): string {
  const uid = process.getuid?.();
  if (uid !== undefined && uid >= DYNAMIC_UIDS[0] && uid <= DYNAMIC_UIDS[1]) {
    const group = supplementaryGroups()[0];
    return (
      `this runs as a systemd DynamicUser (uid ${uid} changes between starts), so grant its group: ` +
      (group ? `chgrp ${group} ${target} && chmod g+${bit} ${target}` : `add SupplementaryGroups=rolesanywhere to the unit, then chgrp rolesanywhere ${target} && chmod g+${bit} ${target}`)
    );
  }
  return `make it ${bit === 'r' ? 'readable' : 'searchable (x)'} by ${whoAmI()}`;
}

/** The nearest ancestor directory of `path` this process cannot enter, if one is why `path` is unreachable. */
function blockedParent(path: string): string | undefined {
  const parts = resolve(path).split(sep).slice(0, -1);
  for (let i = 1; i <= parts.length; i++) {
    const dir = parts.slice(0, i).join(sep) || sep;
    try {
      accessSync(dir, constants.X_OK);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EACCES' ? dir : undefined;
    }
  }
  return undefined;
}

/** The message part after "permission denied" for `path`: the blocking directory, or the file itself. */
export function permissionHint(path: string): string {
  const dir = blockedParent(path);
  if (dir) return `the directory ${dir} is not searchable by this process; ${accessFix(dir, 'x')}`;
  return accessFix(path, 'r');
}

/** Converts a filesystem error into a one-line UserError naming the file and the fix; `label` names the file (default: the path). */
export function fileError(path: string, role: FileRole, err: unknown, label = path): UserError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new UserError(`${label}: ${role} file not found; check the path`, { reason: 'file_not_found', cause: err });
    case 'EACCES':
    case 'EPERM':
      return new UserError(`${label}: permission denied reading the ${role} file; ${permissionHint(path)}`, {
        reason: 'file_permission',
        cause: err,
      });
    case 'EISDIR':
      return new UserError(`${label}: is a directory, expected the ${role} file`, { reason: 'file_is_directory', cause: err });
    case 'ENOTDIR':
      return new UserError(`${label}: a parent of this path is not a directory; check the ${role} file path`, {
        reason: 'file_not_found',
        cause: err,
      });
    default:
      return new UserError(`${label}: cannot read the ${role} file (${code ?? 'unknown error'})`, { reason: 'file_unreadable', cause: err });
  }
}

/**
 * The largest file read for each role, checked before the file is read or parsed
 * (a 40 MB file at the certificate path once drove the daemon out of memory).
 * Roles Anywhere takes certificates of at most 16 KB; a PEM file may also carry
 * the chain, and the certificate path may be a PKCS#12 bundle. Keys, even RSA
 * 16384 or ML-DSA-87 PEM, stay far below 64 KB. A CA bundle (check --ca) may be
 * a whole system trust store.
 */
export const MAX_FILE_BYTES: Partial<Record<FileRole, number>> = {
  certificate: 256 * 1024,
  intermediates: 256 * 1024,
  'private key': 64 * 1024,
  password: 4 * 1024,
  'CA certificate': 4 * 1024 * 1024,
};

/** The cap for a role without its own (callers give `maxBytes`): every read has one. */
const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads a whole input file; a missing, unreadable or empty file is a UserError.
 * A file larger than `maxBytes` (default: the role's MAX_FILE_BYTES) is refused
 * from its size, before it is read.
 */
export async function readInputFile(path: string, role: FileRole, opts: { maxBytes?: number; onRead?: (st: Stats, data: Buffer) => void } = {}): Promise<Buffer> {
  let data: Buffer;
  const maxBytes = opts.maxBytes ?? MAX_FILE_BYTES[role] ?? DEFAULT_MAX_FILE_BYTES;
  try {
    const tooLarge = (size: number | undefined) =>
      new UserError(`${path}: ${role} file is ${size === undefined ? `more than the ${maxBytes} bytes` : `${size} bytes, more than the ${maxBytes}`} a ${role} file can be; check the path`, {
        reason: 'file_too_large',
      });
    data = await readAtMost(path, maxBytes, tooLarge, opts.onRead);
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
 * Reads at most `max` + 1 bytes: a file whose size says it is too large is
 * refused before reading; one that grew since, a pipe, or a device with no
 * size (/dev/zero) is refused once more than `max` bytes have come, so no
 * path can make this read more than that into memory.
 */
export async function readAtMost(path: string, max: number, tooLarge: (size: number | undefined) => Error, onRead?: (st: Stats, data: Buffer) => void): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const st = await fh.stat();
    const data = await readHandle(fh, st.size, max);
    if (data === undefined) throw tooLarge(st.isFile() && st.size > max ? st.size : undefined); // grew, or a pipe or device: its real size is unknown
    onRead?.(st, data);
    return data;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The bytes of an open file, at most `max` of them (undefined when there are more); `size` is what fstat said (0 for a pipe or device). */
async function readHandle(fh: FileHandle, size: number, max: number): Promise<Buffer | undefined> {
  if (size > max) return undefined;
  const chunks: Buffer[] = [];
  let got = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(Math.max(size + 1, 16 * 1024), max + 1 - got));
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) return Buffer.concat(chunks, got);
    chunks.push(chunk.subarray(0, bytesRead));
    got += bytesRead;
    if (got > max) return undefined;
  }
}

/**
 * Passwords read from a pipe, a socket or a device (`--key-password-file <(…)`),
 * by the handle's device and inode: such a source can be read only once, and a
 * second read would find it empty — with a TPM key, a wrong password costs a
 * dictionary-attack try. A reload (a rotated certificate) takes the value read
 * first. The value is held anyway, in the identity it unlocks.
 */
const readOnce = new Map<string, Buffer>();

/**
 * Reads a password file (--key-password-file, keyPasswordFile,
 * --pfx-password-file): the whole content minus one trailing newline (LF or
 * CRLF), so `echo secret > file` works. An empty password is allowed. `flag`,
 * when given, leads the error message (`--pfx-password-file FILE: …`). The
 * content never appears in a message. A source that is not a regular file
 * (a pipe) is read once per process and its first content kept.
 */
export async function readPasswordFile(path: string, flag?: string): Promise<string> {
  const name = flag ? `${flag} ${path}` : path;
  let data: Buffer;
  try {
    const known = await stat(path).then((st) => (st.isFile() ? undefined : readOnce.get(`${st.dev}:${st.ino}`)), () => undefined);
    data =
      known ??
      (await readInputFile(path, 'password', {
        onRead: (st, bytes) => {
          if (!st.isFile()) readOnce.set(`${st.dev}:${st.ino}`, bytes);
        },
      }));
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    if (err.reason === 'file_empty') return '';
    throw new UserError(err.message.replace(path, name), { reason: err.reason, cause: err.cause });
  }
  return withoutFinalNewline(data.toString('utf8'));
}

/** `text` minus one trailing newline (LF or CRLF), as `echo secret > file` and `openssl rand -hex 16 > file` write it. */
export function withoutFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

/** Files larger than every cap are not read to be hashed: their size and mtime stand in (any change still shows). */
const MAX_HASHED_BYTES = 8 * 1024 * 1024;

/**
 * The content of `path` for change detection: a regular file's bytes (read
 * from the handle whose fstat was checked, at most MAX_HASHED_BYTES), or a
 * marker for a missing or oversized file. Anything else — a pipe, a socket, a
 * device (/dev/zero) — is never read here: its size says nothing (0), reading
 * it could go on for ever, and reading a pipe would consume what the loader
 * must parse (`--key-password-file <(…)`). It stands in by its device and inode;
 * the loader reads it once, with the role's cap.
 */
export async function hashableContent(path: string): Promise<Buffer> {
  let fh: FileHandle | undefined;
  const notAFile = (st: Stats) => Buffer.from(`\0not-a-file:${st.mode & constants.S_IFMT}:${st.dev}:${st.ino}:${st.rdev}\0`);
  try {
    // Not even opened unless it is a regular file: opening a named pipe would let its
    // writer go ahead, and closing it again would leave that writer without a reader.
    const first = await stat(path);
    if (!first.isFile()) return notAFile(first);
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const st = await fh.stat(); // what is read is what was opened, whatever the path points to by now
    if (!st.isFile()) return notAFile(st);
    const data = await readHandle(fh, st.size, MAX_HASHED_BYTES);
    return data ?? Buffer.from(`\0too-large:${st.size}:${st.mtimeMs}:${st.ino}\0`);
  } catch (err) {
    return Buffer.from(`\0error:${(err as NodeJS.ErrnoException).code ?? 'unknown'}\0`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
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
    const data = await hashableContent(path);
    hash.update(`${data.length}\0`).update(data);
  }
  return hash.digest('hex');
}

/** A secret file (private key, PKCS#12 bundle, password) that other local users may read or change. */
export interface ExposedSecretFile {
  path: string;
  /** Other users (not only a group) may read or write it. */
  everyone: boolean;
  /** One line naming the file, its mode and the fix. */
  message: string;
}

/**
 * The files of `files` (role → path; non-file specs such as pkcs11: URIs and
 * TPM handles are skipped) that the group or other users can access. A group
 * may be on purpose (the systemd recipe shares keys with the daemon's group);
 * other users never are.
 */
export async function exposedSecretFiles(files: Array<{ path: string | undefined; role: string }>): Promise<ExposedSecretFile[]> {
  const out: ExposedSecretFile[] = [];
  for (const { path, role } of files) {
    if (!path) continue;
    let st;
    try {
      st = await stat(path);
    } catch {
      continue;
    }
    if (!st.isFile() || (st.mode & 0o077) === 0) continue;
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    const everyone = (st.mode & 0o007) !== 0;
    out.push({
      path,
      everyone,
      message: everyone
        ? `${path}: the ${role} file is open to every local user (mode ${mode}); run chmod 600 ${path} (or 640 with a group only the daemon's user is in)`
        : `${path}: the ${role} file is open to its group (gid ${st.gid}, mode ${mode}); that is fine only if the group holds nobody but the daemon's user, else run chmod 600 ${path}`,
    });
  }
  return out;
}

/** A profile's files that hold secrets: the key (or PKCS#12 bundle) and the password file. */
export function secretFilesOf(profile: { certificate: string; privateKey?: string; keyPasswordFile?: string }): Array<{ path: string | undefined; role: string }> {
  return [
    { path: profile.privateKey, role: 'private key' },
    { path: /\.(p12|pfx)$/i.test(profile.certificate) ? profile.certificate : undefined, role: 'PKCS#12' },
    { path: profile.keyPasswordFile, role: 'password' },
  ];
}
