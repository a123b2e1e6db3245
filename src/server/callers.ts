// Who is calling? For a connection from a local process (a client address that is
// loopback or one of this host's), the kernel knows the local user that owns the
// client's socket: /proc/net/tcp and /proc/net/tcp6 list every TCP socket of this
// network namespace with its owner uid. The client's socket is the one whose local
// end is the connection's remote end and whose remote end is our listening address.
//
// Callers are then authorized by the policies of caller-policy.ts (`callers:`).
import type { IncomingMessage } from 'node:http';
import { open } from 'node:fs/promises';
import { isIP, type Socket } from 'node:net';
import { endianness, networkInterfaces } from 'node:os';
import type { Logger } from '../log.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { describeUid, type Accounts, type CallerPolicy, type CallerState } from './caller-policy.js';
import { isThenable, perConnection, type Check, type CheckContext, type CredentialRoute, type Refusal } from './checks.js';
import { NO_DETAILS, type HealthAccess } from './health.js';
import type { ServerState } from './state.js';

/** The two ends of an accepted connection, as the server sees them. */
export interface ConnectionEnds {
  /** Our end: the address the client connected to. */
  localAddress: string;
  localPort: number;
  /** The client's end. */
  remoteAddress: string;
  remotePort: number;
}

/** One row of /proc/net/tcp{,6}. */
export interface ProcSocket {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Kernel TCP state (1 = ESTABLISHED, 6 = TIME_WAIT, 10 = LISTEN). */
  state: number;
  uid: number;
}

const TCP_TIME_WAIT = 6;
const TCP_LISTEN = 10;

/** A comparable key for an IP address: IPv4 and v4-mapped IPv6 as `4:a.b.c.d`, other IPv6 as 8 expanded groups. */
export function addressKey(address: string): string | undefined {
  let a = address.toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const kind = isIP(a);
  if (kind === 4) return `4:${a}`;
  if (kind !== 6) return undefined;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    const b = dotted[1]!.split('.').map(Number);
    a = a.slice(0, -dotted[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':').filter((g) => g !== '') : [];
  const r = rest === undefined ? [] : rest.split(':').filter((g) => g !== '');
  const explicit = h.length + r.length;
  const zeros = rest === undefined ? [] : new Array<string>(8 - explicit).fill('0');
  const groups = [...h, ...zeros, ...r].map((g) => parseInt(g, 16));
  if (groups.length !== 8) return undefined;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `4:${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `6:${groups.map((g) => g.toString(16).padStart(4, '0')).join(':')}`;
}

/**
 * Decodes a /proc/net/tcp address: 8 (IPv4) or 32 (IPv6) hex digits, each
 * 32-bit word printed as a host-order integer, into an `addressKey`.
 */
export function decodeProcAddress(hex: string, littleEndian = endianness() === 'LE'): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return undefined;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (littleEndian) bytes.writeUInt32LE(word, w * 4);
    else bytes.writeUInt32BE(word, w * 4);
  }
  if (bytes.length === 4) return `4:${[...bytes].join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return addressKey(groups.join(':'));
}

/** One row of /proc/net/tcp{,6} (`   1: 0100007F:C350 0100007F:1F90 01 … uid …`), or undefined for the header and malformed rows. */
function parseProcNetRow(line: string, littleEndian: boolean): ProcSocket | undefined {
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
  const f = line.trim().split(/\s+/);
  if (f.length < 8 || !/^\d+:$/.test(f[0]!)) return undefined;
  const [lAddr, lPort] = f[1]!.split(':');
  const [rAddr, rPort] = f[2]!.split(':');
  const local = decodeProcAddress(lAddr ?? '', littleEndian);
  const remote = decodeProcAddress(rAddr ?? '', littleEndian);
  const uid = Number(f[7]);
  if (!local || !remote || !Number.isInteger(uid)) return undefined;
  return { local, localPort: parseInt(lPort ?? '', 16), remote, remotePort: parseInt(rPort ?? '', 16), state: parseInt(f[3]!, 16), uid };
}

/** Parses the text of /proc/net/tcp or /proc/net/tcp6 (the header line and malformed rows are skipped). */
export function parseProcNetTcp(text: string, littleEndian = endianness() === 'LE'): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split('\n')) {
    const row = parseProcNetRow(line, littleEndian);
    if (row) out.push(row);
  }
  return out;
}

/**
 * The uid owning the client's socket of `conn` in the text of /proc/net/tcp or
 * /proc/net/tcp6, if listed. Parses only the rows whose text holds the client's
 * port as the kernel prints it (`:C350 `, %04X): on a host with 100,000 sockets a
 * lookup is one scan of the text on the event loop, not 100,000 parsed rows.
 */
export function clientUidIn(text: string, conn: ConnectionEnds, littleEndian = endianness() === 'LE'): number | undefined {
  const needle = `:${conn.remotePort.toString(16).toUpperCase().padStart(4, '0')} `;
  const rows: ProcSocket[] = [];
  for (let i = text.indexOf(needle); i !== -1; ) {
    let end = text.indexOf('\n', i);
    if (end === -1) end = text.length;
    const row = parseProcNetRow(text.slice(text.lastIndexOf('\n', i) + 1, end), littleEndian);
    if (row) rows.push(row);
    i = text.indexOf(needle, end);
  }
  return findClientUid(rows, conn);
}

/** The uid owning the client's socket of `conn` among `sockets`, if listed. */
export function findClientUid(sockets: ProcSocket[], conn: ConnectionEnds): number | undefined {
  const client = addressKey(conn.remoteAddress);
  const server = addressKey(conn.localAddress);
  if (!client || !server) return undefined;
  for (const s of sockets) {
    if (s.state === TCP_TIME_WAIT || s.state === TCP_LISTEN) continue;
    if (s.localPort === conn.remotePort && s.remotePort === conn.localPort && s.local === client && s.remote === server) return s.uid;
  }
  return undefined;
}

/** What is known about the caller of a connection. */
export type Caller =
  /** The client is not a process of this host (its address is none of this host's): the check does not apply. */
  | { kind: 'remote' }
  /** The caller's socket belongs to this uid. */
  | { kind: 'local'; uid: number }
  /** A local caller whose socket is not listed (it closed already, or another network namespace). */
  | { kind: 'unknown' }
  /** A local caller whose user cannot be looked up: the socket table cannot be read (no /proc, a mount over it) or is too large. */
  | { kind: 'unidentified'; why: string };

/** The most of a socket table read for one batch of lookups: ~55,000 sockets (150 bytes a row). */
export const MAX_TABLE_BYTES = 8 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** Reads a file in chunks (latin1 text); stopping the iteration closes it. */
export type ReadChunks = (path: string) => AsyncIterable<string>;

export async function* readChunks(path: string): AsyncIterable<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) return;
      yield buf.toString('latin1', 0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/** A socket table cannot be read (or is larger than MAX_TABLE_BYTES): the callers it was read for are unidentified. */
export class TableUnreadable extends Error {}

/** The lookups sharing one read of a table, by the client port as the kernel prints it (`C350`). */
class Batch {
  readonly byPort = new Map<string, Array<{ conn: ConnectionEnds; resolve: (uid: number | undefined) => void; reject: (err: Error) => void }>>();
  left = 0;

  add(conn: ConnectionEnds): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const port = conn.remotePort.toString(16).toUpperCase().padStart(4, '0');
      let list = this.byPort.get(port);
      if (list === undefined) this.byPort.set(port, (list = []));
      list.push({ conn, resolve, reject });
      this.left++;
    });
  }

  /** One row: answers the lookups whose client it is. */
  row(line: string, littleEndian: boolean): void {
    // `   7: 0100007F:C350 0100007F:1F90 01 …`: the local port follows the first address.
    const sep = line.indexOf(':', line.indexOf(':') + 2);
    if (sep === -1) return;
    const list = this.byPort.get(line.slice(sep + 1, sep + 5));
    if (list === undefined) return;
    const row = parseProcNetRow(line, littleEndian);
    if (row === undefined) return;
    for (let i = list.length - 1; i >= 0; i--) {
      const w = list[i]!;
      const uid = findClientUid([row], w.conn);
      if (uid === undefined) continue;
      w.resolve(uid);
      list.splice(i, 1);
      this.left--;
    }
  }

  /** The read ended: whoever is not answered is not listed (or, on `err`, unidentified). */
  end(err?: Error): void {
    for (const list of this.byPort.values()) for (const w of list) (err ? w.reject(err) : w.resolve(undefined));
    this.byPort.clear();
    this.left = 0;
  }
}

/** The addresses of this host's interfaces (this network namespace), as `addressKey`s. */
function interfaceAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) {
    const k = addressKey(a.address);
    if (k) out.add(k);
  }
  return out;
}

/** How long a miss in the host's address list is answered from the list it has before it is read again. */
const ADDRESSES_REREAD_MS = 1000;

/**
 * Finds the uid behind connections from local processes, once per connection (the
 * answer is kept with the socket). A client is a local process when its address is
 * loopback or one of this host's own: a connection to a non-loopback address of this
 * host from a local process comes from a local address too (the kernel refuses
 * packets from outside that claim one of them). Its socket is then listed in
 * /proc/net/tcp{,6} with its owner's uid.
 */
export class CallerLookup {
  /**
   * Reads of each table not yet started: every lookup made before a read starts
   * shares it, and the next read starts only when the one in flight has finished.
   * A burst of new connections (a client opening its pool, a node's pods starting)
   * costs a read per read-time, not one per connection. A read never serves a
   * lookup made after it started (that connection might not be listed yet). A read
   * stops once every lookup it serves is answered, and after MAX_TABLE_BYTES.
   */
  private readonly nextRead = new Map<string, { batch: Batch; started: Promise<void> }>();
  /** The read of each table in flight. */
  private readonly lastRead = new Map<string, Promise<void>>();
  private addresses: Set<string> | undefined;
  private addressesReadAt = 0;

  // /proc/self/net, not /proc/net: the latter is hidden by systemd's ProcSubset=pid.
  constructor(
    readonly procNet = '/proc/self/net',
    private readonly chunks: ReadChunks = readChunks,
    private readonly hostAddresses: () => Set<string> = interfaceAddresses,
    private readonly maxTableBytes = MAX_TABLE_BYTES,
  ) {}

  /** Why /proc/net/tcp cannot be read here, or undefined when it can. */
  async unavailable(): Promise<string | undefined> {
    try {
      for await (const _ of this.chunks(`${this.procNet}/tcp`)) break;
      return undefined;
    } catch (err) {
      return unreadableWhy(`${this.procNet}/tcp`, err);
    }
  }

  /** The caller of the connection `socket`: looked up once per connection, then answered synchronously. A failed lookup is not kept (the next request tries again). */
  readonly callerOf: (socket: Socket) => Caller | Promise<Caller> = ((memo: (socket: Socket) => Caller | Promise<Caller>) => (socket: Socket) => {
    const c = memo(socket);
    return isThenable<Caller>(c) ? c.catch((err: unknown) => ({ kind: 'unidentified' as const, why: err instanceof TableUnreadable ? err.message : String(err) })) : c;
  })(
    perConnection((socket) =>
      this.lookup({
        localAddress: socket.localAddress ?? '',
        localPort: socket.localPort ?? 0,
        remoteAddress: socket.remoteAddress ?? '',
        remotePort: socket.remotePort ?? 0,
      }, true),
    ),
  );

  /** The caller of `socket` if already looked up, else undefined. */
  known(socket: Socket): Caller | undefined {
    const c = this.callerOf(socket);
    return isThenable(c) ? undefined : c;
  }

  /** Whether `address` is loopback or one of this host's (the list is read again, at most once a second, when it is not in it). */
  isLocalAddress(address: string): boolean {
    if (isLoopbackHostname(address)) return true;
    const key = addressKey(address);
    if (key === undefined) return false;
    if (this.addresses?.has(key)) return true;
    const now = Date.now();
    if (this.addresses === undefined || now - this.addressesReadAt >= ADDRESSES_REREAD_MS) {
      this.addresses = this.hostAddresses();
      this.addressesReadAt = now;
    }
    return this.addresses.has(key);
  }

  /** The caller of a connection; `rejectUnreadable`: throw TableUnreadable instead of answering `unidentified`. */
  async lookup(conn: ConnectionEnds, rejectUnreadable = false): Promise<Caller> {
    if (!this.isLocalAddress(conn.remoteAddress)) return { kind: 'remote' };
    // An IPv4 client's socket is IPv4 (tcp) or an IPv6 one speaking v4-mapped (tcp6); an IPv6 client's is in tcp6.
    // The first table must be readable; the second may be missing (IPv6 disabled).
    const v6 = addressKey(conn.remoteAddress)?.startsWith('6:') === true;
    const files = v6 ? ['tcp6'] : ['tcp', 'tcp6'];
    try {
      for (const [i, file] of files.entries()) {
        let uid: number | undefined;
        try {
          uid = await this.inTable(file, conn);
        } catch (err) {
          if (i === 0) throw err;
        }
        if (uid !== undefined) return { kind: 'local', uid };
      }
    } catch (err) {
      if (rejectUnreadable || !(err instanceof TableUnreadable)) throw err;
      return { kind: 'unidentified', why: err.message };
    }
    return { kind: 'unknown' };
  }

  /**
   * The uid of `conn`'s client in /proc/net/`file`, from the next read: it starts
   * once the read in flight (if any) has finished and the event loop has turned, and
   * every lookup asking until then shares it.
   */
  private inTable(file: string, conn: ConnectionEnds): Promise<number | undefined> {
    let next = this.nextRead.get(file);
    if (next === undefined) {
      const batch = new Batch();
      const started = (this.lastRead.get(file) ?? Promise.resolve())
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          this.nextRead.delete(file);
          const reading = this.scan(`${this.procNet}/${file}`, batch);
          this.lastRead.set(file, reading);
          void reading.then(() => {
            if (this.lastRead.get(file) === reading) this.lastRead.delete(file);
          });
        });
      next = { batch, started };
      this.nextRead.set(file, next);
    }
    return next.batch.add(conn);
  }

  /** Reads `path` for the lookups of `batch`, row by row, until all are answered or the table ends (or is too large). */
  private async scan(path: string, batch: Batch): Promise<void> {
    const littleEndian = endianness() === 'LE';
    let carry = '';
    let bytes = 0;
    try {
      for await (const chunk of this.chunks(path)) {
        bytes += chunk.length;
        const text = carry + chunk;
        let start = 0;
        for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
          batch.row(text.slice(start, nl), littleEndian);
          start = nl + 1;
        }
        carry = text.slice(start);
        if (batch.left === 0) break;
        if (bytes >= this.maxTableBytes) {
          batch.end(new TableUnreadable(`${path} is larger than ${this.maxTableBytes} bytes (too many sockets on this host) and the caller's socket is not in the part read`));
          return;
        }
      }
      if (carry !== '') batch.row(carry, littleEndian);
      batch.end();
    } catch (err) {
      batch.end(new TableUnreadable(unreadableWhy(path, err)));
    }
  }
}

/** Why a socket table cannot be read, for messages. */
function unreadableWhy(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `${path} does not exist (not Linux, /proc not mounted, or something mounted over it)`;
  return `${path} cannot be read (${code ?? (err as Error).message})`;
}

/** The refusal text for a caller: names the uid and the setting that would let it in. */
export function refusalMessage(caller: Caller, policy: CallerPolicy, accounts: Accounts | undefined): string {
  if (caller.kind === 'unknown') {
    return `cannot tell which local user is calling (its socket is not in /proc/net/tcp); credentials are served only to callers allowed by ${policy.setting}`;
  }
  if (caller.kind === 'unidentified') {
    return `cannot tell which local user is calling: ${caller.why}; credentials are served only to callers allowed by ${policy.setting} (allowUnidentifiedCallers: true serves every local user)`;
  }
  const who = caller.kind === 'local' ? describeUid(caller.uid, accounts) : 'this caller';
  return `the calling process runs as ${who}, which is not allowed to get these credentials; add it to ${policy.setting}.users (or one of its groups to ${policy.setting}.groups) in the daemon's configuration`;
}

/** What a refused caller asked for (for the log and the metrics). */
export interface RefusedCall {
  caller: Caller;
  route: CredentialRoute;
  profile: string;
  accounts: Accounts;
}

/**
 * Whether `caller` may have `profile`'s credentials over `route`. A remote client is
 * not a local user: the policy does not apply (the endpoint token does). A local
 * caller whose user cannot be identified (no readable socket table) is refused,
 * unless allowUnidentifiedCallers, or it asks the container route (which needs
 * the endpoint token) for a profile without a `callers` setting of its own.
 */
export function callerAllowed(caller: Caller, callers: CallerState, profile: string, route: CredentialRoute): boolean {
  if (caller.kind === 'remote') return true;
  const policy = callers.policies.get(profile);
  if (policy === undefined) return true;
  switch (caller.kind) {
    case 'local':
      return policy.allows(caller.uid);
    case 'unidentified':
      return callers.allowUnidentified || (route === 'container' && !policy.explicit);
    case 'unknown':
      return false;
  }
}

/**
 * The credential routes' caller authorization (an `authorize` check): a local
 * caller gets the profile's credentials only when its uid is allowed by the
 * profile's policy. Answers from the per-socket cache when it can (no promise).
 */
export function callerCheck(lookup: CallerLookup, onRefused: (refused: RefusedCall) => void): Check {
  const decide = (caller: Caller, ctx: CheckContext): Refusal | undefined => {
    const callers = ctx.state.callers;
    const profile = ctx.profile;
    if (callers === undefined || profile === undefined || callerAllowed(caller, callers, profile, ctx.route)) return undefined;
    onRefused({ caller, route: ctx.route, profile, accounts: callers.accounts });
    return { status: 403, code: 'AccessDenied', message: refusalMessage(caller, callers.policies.get(profile)!, callers.accounts) };
  };
  return (req, ctx) => {
    if (ctx.state.callers === undefined) return undefined;
    const caller = lookup.callerOf(req.socket);
    return isThenable<Caller>(caller) ? caller.then((c) => decide(c, ctx)) : decide(caller, ctx);
  };
}

/**
 * Who may read the health routes' details (main listeners): why a profile is not ready
 * only to callers allowed that profile's credentials; /metrics only to a caller allowed
 * some profile's. A remote client gets neither (the health listener is for those).
 */
export function healthAccess(lookup: CallerLookup): (req: IncomingMessage, state: ServerState) => HealthAccess | Promise<HealthAccess> {
  const decide = (caller: Caller, state: ServerState): HealthAccess => {
    const callers = state.callers;
    if (callers === undefined) return FULL_DETAILS;
    if (caller.kind === 'remote') return NO_DETAILS;
    const reasons = (profile: string) => callerAllowed(caller, callers, profile, 'container');
    let metrics = false;
    for (const profile of callers.policies.keys()) if ((metrics = reasons(profile))) break;
    return { reasons, metrics };
  };
  return (req, state) => {
    const caller = lookup.callerOf(req.socket);
    return isThenable<Caller>(caller) ? caller.then((c) => decide(c, state)) : decide(caller, state);
  };
}

const FULL_DETAILS: HealthAccess = { reasons: () => true, metrics: true };

/** How often one refused caller (uid, or kind) is logged at most. */
export const REFUSAL_LOG_INTERVAL_MS = 60_000;

/**
 * Logs refused local callers (uid, user name, route, profile), each at most once per
 * `intervalMs`, with how many refusals were not logged since: a refused user sees only
 * its SDK's "Unable to locate credentials", the operator sees who and why here.
 */
export function refusalLogger(log: Logger, intervalMs = REFUSAL_LOG_INTERVAL_MS, now: () => number = Date.now): (refused: RefusedCall) => void {
  const last = new Map<string, { at: number; quiet: number }>();
  return ({ caller, route, profile, accounts }) => {
    const key = caller.kind === 'local' ? `uid:${caller.uid}` : caller.kind;
    const t = now();
    const seen = last.get(key);
    if (seen !== undefined && t - seen.at < intervalMs) {
      seen.quiet++;
      return;
    }
    if (last.size >= 10_000) last.clear();
    last.set(key, { at: t, quiet: 0 });
    const who =
      caller.kind === 'local'
        ? { uid: caller.uid, user: accounts.users.find((u) => u.uid === caller.uid)?.name ?? null }
        : { uid: null, why: caller.kind === 'unidentified' ? caller.why : 'its socket is not in /proc/net/tcp' };
    log.warn({ ...who, route: route === 'imds' ? 'IMDS' : 'container endpoint', profile, ...(seen ? { notLogged: seen.quiet } : {}) }, 'refused a local caller that callers does not allow');
  };
}
