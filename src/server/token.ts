import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UserError } from '../errors.js';
import { permissionHint, readAtMost, withoutFinalNewline } from '../identity/files.js';

export interface EndpointToken {
  /** The token value. Never log it. */
  value: string;
  /** True when the file did not exist and was generated now. */
  created: boolean;
  /** Problems worth a warning (e.g. readable by every user); never contain the token. */
  warnings: string[];
}

/**
 * Reads the endpoint token from `path` (one trailing newline is not part of
 * it), or generates a 256-bit token and writes it there (mode 0600, no
 * trailing newline, atomic) when missing. A group may read an existing file:
 * that is how the token is shared with applications.
 */
export async function ensureEndpointToken(path: string): Promise<EndpointToken> {
  await checkTokenPlace(path);
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
  const value = randomBytes(32).toString('base64url');
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UserError(`cannot create the token file's directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; create it or choose another --token-file`, { reason: 'token_file' });
  }
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(value, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new UserError(`cannot write token file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; check the directory's permissions or choose another --token-file`, { reason: 'token_file' });
  }
  return { value, created: true, warnings: [] };
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
 * Refuses a token file another local user could have written or could replace:
 * the file must belong to this user or root, and its directory must belong to
 * this user or root and be writable by nobody else (a sticky directory such as
 * /tmp is fine for a file of ours: others cannot replace it there).
 */
export async function checkTokenPlace(path: string): Promise<void> {
  const self = process.getuid?.();
  if (self === undefined) return; // not a POSIX system
  const trusted = (uid: number) => uid === self || uid === 0;
  const dir = dirname(path);
  let file;
  try {
    file = await stat(path);
  } catch {
    file = undefined; // missing: generated below (if the directory is safe)
  }
  if (file && !trusted(file.uid)) {
    throw new UserError(
      `token file ${path} belongs to uid ${file.uid}, not to this user (uid ${self}) or root: that user chose the token and can read it; delete the file (a new one is generated) or chown it to uid ${self}`,
      { reason: 'token_file_owner' },
    );
  }
  let d;
  try {
    d = await stat(dir);
  } catch {
    return; // missing: created below with mode 0700
  }
  const othersWrite = (d.mode & 0o022) !== 0;
  const sticky = (d.mode & 0o1000) !== 0;
  if (!trusted(d.uid) || (othersWrite && !(sticky && file))) {
    throw new UserError(
      `the token file's directory ${dir} ${!trusted(d.uid) ? `belongs to uid ${d.uid}` : `is writable by other users (mode ${(d.mode & 0o7777).toString(8)})`}, so another user could replace the token file; put it in a directory only this user (uid ${self}) or root can write (chmod go-w ${dir}), or choose another --token-file`,
      { reason: 'token_file_directory' },
    );
  }
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
