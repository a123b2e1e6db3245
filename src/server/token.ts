import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { permissionHint, readAtMost, withoutFinalNewline } from '../identity/files.js';

export interface EndpointToken {
  /** The token value. Never log it. */
  value: string;
  /** True when the file did not exist (or, in a shared directory, was not ours) and was generated now. */
  created: boolean;
  /** Problems worth a warning (e.g. readable by every user); never contain the token. */
  warnings: string[];
  /** In a directory other users may write: what was accepted there and why (one log line). */
  shared?: string;
  /** The file this process created, to recognise it at the next reload (an inode number can be reused: the change time tells a new file apart). */
  file?: FileId;
}

/**
 * Reads the endpoint token from `path` (one trailing newline is not part of
 * it), or generates a 256-bit token and writes it there (mode 0600, no
 * trailing newline, atomic) when missing. A group may read an existing file:
 * that is how the token is shared with applications.
 *
 * In a directory other users may write (a Kubernetes emptyDir is 0777 root, or
 * 2777 root:fsGroup; a tmpfs from docker/podman or medium: Memory is 1777 or
 * 3777) nothing found at the path is trusted: the daemon writes a new token
 * itself (see writeTokenFile) and, at a reload, keeps it only while the path is
 * still the file it created (`previous`).
 */
export async function ensureEndpointToken(path: string, previous?: EndpointToken): Promise<EndpointToken> {
  const place = await checkTokenPlace(path);
  if (place.shared) return sharedToken(path, place.shared, previous);
  let text: string | undefined;
  try {
    // A token longer than MAX_TOKEN_LENGTH is refused anyway; reading more (a huge file, /dev/zero) would only fill memory.
    text = (await readAtMost(path, MAX_TOKEN_LENGTH + 2, () => tooLong(path))).toString('utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new UserError(`token file ${path} is a directory; point --token-file at a file`, { reason: 'token_file' });
    if (code === 'EACCES') throw new UserError(`token file ${path}: permission denied; ${permissionHint(path)}`, { reason: 'token_file' });
    if (code !== 'ENOENT') throw new UserError(`cannot read token file ${path}: ${code ?? String(err)}`, { reason: 'token_file' });
  }
  if (text !== undefined) {
    const value = withoutFinalNewline(text);
    validateToken(value, path);
    const warnings: string[] = [];
    if (value !== text) {
      warnings.push(
        `token file ${path} ends with a line break: the daemon ignores it, but SDKs and CLIs reading the file (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) ` +
          `send it as is and fail; remove it (truncate -s -${text.length - value.length} ${path}) or write tokens with printf '%s'`,
      );
    }
    try {
      const st = await stat(path);
      if ((st.mode & 0o007) !== 0) {
        warnings.push(`token file ${path} is open to every local user (mode ${(st.mode & 0o777).toString(8)}); run chmod o-rwx on it (share it through a group or an ACL instead)`);
      }
    } catch {
      // ignore
    }
    return { value, created: false, warnings };
  }
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UserError(`cannot create the token file's directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; create it or choose another --token-file`, { reason: 'token_file' });
  }
  const written = await writeTokenFile(path, 0o600);
  return { value: written.value, created: true, warnings: [], file: written.file };
}

interface FileId {
  dev: number;
  ino: number;
  ctimeMs: number;
}

const sameFile = (st: Stats, id: FileId) => st.isFile() && st.dev === id.dev && st.ino === id.ino && st.ctimeMs === id.ctimeMs && st.uid === process.getuid?.();

/** A directory other users (or a group) may write: its mode and owners, as found. */
interface SharedDir {
  mode: number;
  uid: number;
  gid: number;
}

const octal = (mode: number) => (mode & 0o7777).toString(8);

/** The token in a shared directory: the file this process created (still in place), or a new one. */
async function sharedToken(path: string, dir: SharedDir, previous: EndpointToken | undefined): Promise<EndpointToken> {
  const found = await lstat(path).catch(() => undefined);
  if (previous?.file && found && sameFile(found, previous.file)) {
    return { ...previous, created: false, warnings: [], shared: undefined };
  }
  // setgid (kubelet's fsGroup): the file gets the directory's group, which the pod's containers share, and that group may read it.
  const groupShared = (dir.mode & 0o2000) !== 0;
  const mode = groupShared ? 0o640 : 0o600;
  const written = await writeTokenFile(path, mode);
  const stale = !found
    ? ''
    : previous?.file
      ? `; the token file was replaced or removed since this daemon wrote it (now ${describe(found)}), so it wrote a new one`
      : `; replaced what was there (${describe(found)}) without reading it`;
  const shared =
    `token directory ${dirname(path)} is writable by other users (mode ${octal(dir.mode)}, owner uid ${dir.uid}, group ${dir.gid}: e.g. a Kubernetes emptyDir or a container tmpfs); ` +
    `accepted because the daemon trusts only a token file it creates there itself (exclusive create, links never followed, inode re-checked)${stale}; ` +
    `wrote a new token file, mode ${octal(mode)}${groupShared ? `, group ${written.gid} (the directory's setgid group, e.g. the pod's fsGroup, may read it)` : ' (only this user may read it)'}`;
  return { value: written.value, created: true, warnings: [], shared, file: written.file };
}

function describe(st: Stats): string {
  const kind = st.isSymbolicLink() ? 'a symbolic link' : st.isFile() ? 'a file' : st.isDirectory() ? 'a directory' : 'a special file';
  return `${kind} of uid ${st.uid}`;
}

/**
 * Writes a new random token at `path` the one safe way, for every creation
 * (start, a reload that finds the file gone, a shared directory): a new file
 * made with O_CREAT|O_EXCL|O_NOFOLLOW (never an existing file or link, in a
 * directory anyone may write), written, synced, then renamed over whatever is
 * at `path` (a stale file or a link is replaced, never followed; in a sticky
 * directory the kernel refuses to replace another user's entry). Then the path
 * must be the inode written (lstat vs fstat): otherwise another user swapped it.
 */
async function writeTokenFile(path: string, mode: number): Promise<{ value: string; file: FileId; gid: number }> {
  const value = randomBytes(32).toString('base64url');
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (err) {
    throw new UserError(`cannot write token file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; check the directory's permissions or choose another --token-file`, { reason: 'token_file' });
  }
  let written;
  try {
    await fh.writeFile(value, 'utf8');
    await fh.chmod(mode); // exact, whatever the umask
    await fh.sync();
    written = await fh.stat();
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'EACCES') {
      const there = await lstat(path).catch(() => undefined);
      if (there && there.uid !== process.getuid?.()) {
        throw new UserError(
          `token file ${path} is ${describe(there)}, not created by this daemon, and this sticky directory does not let the daemon replace it: a token it did not create is never trusted there; ` +
            `have uid ${there.uid} or root remove it, or choose a token file in a directory of this user's: $XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, the systemd unit's RuntimeDirectory, or a pod volume`,
          { reason: 'token_file_owner' },
        );
      }
    }
    if (code === 'EISDIR') throw new UserError(`token file ${path} is a directory; point --token-file at a file`, { reason: 'token_file' });
    throw new UserError(`cannot write token file ${path}: ${code ?? String(err)}; check the directory's permissions or choose another --token-file`, { reason: 'token_file' });
  } finally {
    await fh.close();
  }
  const now = await lstat(path).catch(() => undefined);
  if (!now || !now.isFile() || now.dev !== written.dev || now.ino !== written.ino) {
    throw new UserError(
      `token file ${path} was replaced right after the daemon wrote it (${now ? `now ${describe(now)}` : 'now missing'}): another user is writing in ${dir}; ` +
        `choose a token file in a directory of this user's: $XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, the systemd unit's RuntimeDirectory, or a pod volume`,
      { reason: 'token_file_owner' },
    );
  }
  // The rename changed the change time: remember the file as it is now at the path.
  return { value, file: { dev: now.dev, ino: now.ino, ctimeMs: now.ctimeMs }, gid: now.gid };
}

/** The longest endpoint token: SDKs send it in an Authorization header, and Node's HTTP server takes 16 KiB of headers in all. */
export const MAX_TOKEN_LENGTH = 4096;

function tooLong(path: string): UserError {
  return new UserError(`token file ${path} holds more than ${MAX_TOKEN_LENGTH} characters, too long for an HTTP header; use a shorter random token or delete the file to have one generated`, {
    reason: 'token_file',
  });
}

function validateToken(text: string, path: string): void {
  if (text.length > MAX_TOKEN_LENGTH) throw tooLong(path);
  if (text.length === 0) throw new UserError(`token file ${path} is empty; put a token in it (no trailing newline) or delete it to have one generated`, { reason: 'token_file' });
  if (/[\r\n]/.test(text)) {
    throw new UserError(`token file ${path} contains a line break (SDKs reject such tokens); rewrite it without a newline, e.g. printf '%s' "$TOKEN" > ${path}`, { reason: 'token_file' });
  }
  if (!/^[\x21-\x7e]+$/.test(text)) {
    throw new UserError(`token file ${path} contains spaces or non-printable/non-ASCII characters; use a token of visible ASCII characters, or delete the file to have one generated`, { reason: 'token_file' });
  }
  if (text.length < 16) throw new UserError(`token file ${path} holds a token shorter than 16 characters; use a longer random token or delete the file to have one generated`, { reason: 'token_file' });
}

/**
 * Refuses a token file another local user could have written: its directory
 * must belong to this user or root, and a file in a private directory (one
 * nobody else may write) to this user or root. A directory others may write
 * (0777/1777 and, with a group, 2777/3777: what kubelet, docker and podman
 * give) is returned as `shared`: only a file this process creates is trusted
 * there.
 */
export async function checkTokenPlace(path: string): Promise<{ shared?: SharedDir }> {
  const self = process.getuid?.();
  if (self === undefined) return {}; // not a POSIX system
  const trusted = (uid: number) => uid === self || uid === 0;
  const dir = dirname(path);
  let d;
  try {
    d = await stat(dir);
  } catch {
    return {}; // missing: created with mode 0700
  }
  if (!trusted(d.uid)) {
    throw new UserError(
      `the token file's directory ${dir} belongs to uid ${d.uid}, neither this user (uid ${self}) nor root, so that user could replace the token file; ` +
        `choose a token file in a directory of this user's or root's: $XDG_RUNTIME_DIR/rolesanywhere-credentiald/token, the systemd unit's RuntimeDirectory (/run/rolesanywhere-credentiald/token), or a pod volume mounted at the token's directory`,
      { reason: 'token_file_directory' },
    );
  }
  if ((d.mode & 0o022) !== 0) return { shared: { mode: d.mode, uid: d.uid, gid: d.gid } };
  let file;
  try {
    file = await stat(path);
  } catch {
    return {}; // missing: generated
  }
  if (!trusted(file.uid)) {
    throw new UserError(
      `token file ${path} belongs to uid ${file.uid}, not to this user (uid ${self}) or root: that user chose the token and can read it; delete the file (a new one is generated) or chown it to uid ${self}`,
      { reason: 'token_file_owner' },
    );
  }
  return {};
}

/**
 * Constant-time check of a presented token against the expected one: both are
 * hashed with SHA-256 (equal lengths, whatever is presented) and the digests
 * compared with timingSafeEqual. `crypto.hash` is the one-shot form of
 * createHash().update().digest(), without the Hash object per request.
 */
export class TokenVerifier {
  private readonly digest: Buffer;
  constructor(token: string) {
    this.digest = hash('sha256', token, 'buffer');
  }
  matches(presented: string | string[] | undefined): boolean {
    if (typeof presented !== 'string') return false;
    return timingSafeEqual(hash('sha256', presented, 'buffer'), this.digest);
  }
}
