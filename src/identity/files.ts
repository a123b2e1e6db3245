import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
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
  /**
   * 'error' for a file every local user can open on a filesystem where it can
   * be fixed with chmod or at its source (check FAILs); 'warning' for a group
   * that may hold other users, and for a world-readable file on a kubelet
   * volume, where only the pod's own containers can reach it.
   */
  severity: 'error' | 'warning';
  /** One line naming the file, its mode and the fix. */
  message: string;
}

/** Where a file lives, which decides what can fix its mode. */
type Place = { kind: 'writable' } | { kind: 'read-only'; mount: string } | { kind: 'kubelet'; volume: string };

/** /proc/self/mountinfo is a few KB; a node with thousands of mounts stays far below this. */
const MAX_MOUNTINFO_BYTES = 4 * 1024 * 1024;

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const unescapeMount = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/**
 * The mount point holding `real` (a resolved path) if that mount is read-only
 * (per mount, as `mount --bind -o ro` makes it, or for the whole filesystem),
 * from /proc/self/mountinfo: the longest matching mount point, the last of
 * equal ones (mounts stacked on one point hide earlier ones).
 */
async function readOnlyMount(real: string): Promise<string | undefined> {
  let text: string;
  try {
    text = (await readAtMost('/proc/self/mountinfo', MAX_MOUNTINFO_BYTES, () => new Error('mountinfo too large'))).toString('utf8');
  } catch {
    return undefined; // not Linux, or no /proc: nothing known, so chmod stays the advice
  }
  let best: { point: string; ro: boolean } | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (f.length < 6 || dash < 6) continue;
    const point = unescapeMount(f[4]!);
    const inside = point === sep || real === point || real.startsWith(point + sep);
    if (!inside || (best && point.length < best.point.length)) continue;
    const ro = f[5]!.split(',').includes('ro') || (f[dash + 3] ?? '').split(',').includes('ro');
    best = { point, ro };
  }
  return best?.ro ? best.point : undefined;
}

/**
 * The directory of a kubelet atomic-writer volume (Secret, ConfigMap,
 * projected, and CSI drivers built on the same writer) that holds `path`:
 * the key's symlink `DIR/key -> ..data/key`, or a path through `DIR/..data/`
 * or the timestamped directory, where DIR has the `..data` symlink.
 */
async function kubeletVolume(path: string, real: string): Promise<string | undefined> {
  const candidates = [dirname(resolve(path)), dirname(dirname(resolve(path))), dirname(dirname(real))];
  for (const dir of candidates) {
    try {
      if ((await lstat(join(dir, '..data'))).isSymbolicLink()) return dir;
    } catch {
      // not this one
    }
  }
  return undefined;
}

async function placeOf(path: string): Promise<Place> {
  let real: string;
  try {
    real = await realpath(path);
  } catch {
    return { kind: 'writable' };
  }
  const volume = await kubeletVolume(path, real);
  if (volume) return { kind: 'kubelet', volume };
  const mount = await readOnlyMount(real);
  return mount ? { kind: 'read-only', mount } : { kind: 'writable' };
}

/** /etc/passwd and /etc/group are read whole only up to this size (a local file; directory services are not consulted). */
const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;

/** Names of the users, other than this process's own, who hold `gid` (as primary group in /etc/passwd or member in /etc/group); undefined when /etc/group does not list it. */
async function otherMembers(gid: number): Promise<string[] | undefined> {
  const read = async (file: string) => {
    try {
      return (await readAtMost(file, MAX_ACCOUNT_FILE_BYTES, () => new Error(`${file} too large`))).toString('utf8').split('\n').map((l) => l.split(':'));
    } catch {
      return [];
    }
  };
  const uid = process.getuid?.();
  let me: string | undefined;
  try {
    me = userInfo().username;
  } catch {
    me = undefined; // a uid with no passwd entry (a container's arbitrary uid)
  }
  const group = (await read('/etc/group')).find((f) => f.length >= 4 && Number(f[2]) === gid);
  if (!group) return undefined;
  const names = new Set((group[3] ?? '').split(',').filter(Boolean));
  for (const f of await read('/etc/passwd')) if (f.length >= 4 && Number(f[3]) === gid && Number(f[2]) !== uid) names.add(f[0]!);
  if (me) names.delete(me);
  return [...names];
}

/**
 * Whether the group `gid` can reach the file only through this process: it is
 * this process's primary or a supplementary group and /etc/group and
 * /etc/passwd give it no other user. (A group unknown to /etc/group proves
 * nothing and so does not count.)
 */
async function groupIsOnlyUs(gid: number): Promise<boolean> {
  const ours = gid === process.getgid?.() || (process.getgroups?.() ?? []).includes(gid);
  return ours && (await otherMembers(gid))?.length === 0;
}

const KUBELET_FIX =
  'set defaultMode: 0400 on the Secret or projected volume (0440 with the pod\'s fsGroup when the daemon is not root), ' +
  'or the file mode of the CSI driver that writes it (secrets-store: filePermission in the SecretProviderClass; cert-manager csi-driver: csi.cert-manager.io/fs-group)';

/**
 * The files of `files` (role → path; non-file specs such as pkcs11: URIs and
 * TPM handles are skipped) that users other than the daemon's may open.
 *
 * - Every user (o+r/w): always reported. An error where the file sits on a
 *   writable or plain read-only filesystem; a warning on a kubelet volume,
 *   whose files only the pod's own containers reach (kubelet keeps the node's
 *   copy under /var/lib/kubelet/pods, which is root's alone).
 * - Its group only: not reported when the group holds nobody but the daemon's
 *   user (the systemd recipe's group, a pod's runAsGroup), nor on a kubelet
 *   volume: there the group is the pod's fsGroup, which only the pod's
 *   containers hold, and each of them may mount that volume anyway, so the
 *   group grants nobody anything new. Otherwise a warning.
 *
 * On a kubelet volume or a read-only mount, chmod cannot work (EROFS, and
 * kubelet rewrites the files): the message names the fix that does.
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
    const everyone = (st.mode & 0o007) !== 0;
    const place = await placeOf(path);
    if (!everyone && (place.kind === 'kubelet' || (await groupIsOnlyUs(st.gid)))) continue;
    const mode = (st.mode & 0o777).toString(8).padStart(3, '0');
    const members = everyone ? undefined : await otherMembers(st.gid);
    const who = everyone
      ? `open to every local user (mode ${mode})`
      : `open to its group (gid ${st.gid}, mode ${mode}), ` +
        (members === undefined ? 'a group this system does not list' : members.length ? `a group that also holds the user(s) ${members.slice(0, 3).join(', ')}${members.length > 3 ? '…' : ''}` : 'not a group of the daemon\'s user');
    let fix: string;
    if (place.kind === 'kubelet') fix = `it is on a read-only Kubernetes volume (${place.volume}), where chmod cannot change it; ${KUBELET_FIX}`;
    else if (place.kind === 'read-only') fix = `it is on a read-only mount (${place.mount}), where chmod cannot change it; chmod 600 the file where it comes from (the source of the bind mount or volume)`;
    else fix = everyone ? `run chmod 600 ${path} (or 640 with a group only the daemon's user is in)` : `run chmod 600 ${path}, or chgrp it to a group only the daemon's user is in`;
    out.push({ path, everyone, severity: everyone && place.kind !== 'kubelet' ? 'error' : 'warning', message: `${path}: the ${role} file is ${who}; ${fix}` });
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
