// Shared emulator state and the shapes exposed to tests (stats, issued credentials).
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import type { X509Certificate } from 'node:crypto';
import { FaultSet } from './faults.js';

/** An AssumeRole target the emulator was told about, with the ExternalId its trust policy requires (if any). */
export interface AssumableRole {
  roleArn: string;
  externalId?: string;
}

/** A credential the emulator issued (tests assert on it; it holds secrets, never log it). */
export interface IssuedCredential {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Whole seconds, exactly what the response said. */
  expiration: Date;
  issuedAt: Date;
  roleArn: string;
  accountId: string;
  /** arn:aws:sts::<account>:assumed-role/<role name>/<session name> */
  assumedRoleArn: string;
  /** AROA…:<session name> */
  assumedRoleId: string;
  roleSessionName: string;
  trustAnchorArn: string;
  profileArn: string;
  /** Leaf serial in decimal. */
  serial: string;
  /** Leaf subject CN (the response's sourceIdentity). */
  sourceIdentity: string;
}

export type EmulatorOperation = 'CreateSession' | 'GetCallerIdentity' | 'AssumeRole';

/** One call, as logged (no secrets). */
export interface CallRecord {
  /** ISO-8601 time the call arrived. */
  time: string;
  operation: EmulatorOperation;
  /** `ok`, the error type (e.g. `AccessDeniedException`), or `fault:<kind>` for drop/malformed/empty-set. */
  outcome: string;
  /** Internal reason for a refusal (e.g. `bad_signature`, `serial_mismatch`, `untrusted`). */
  reason?: string;
  /** CreateSession: leaf serial (decimal) from the Credential field or the certificate. */
  serial?: string;
  /** GetCallerIdentity: the access key id used; CreateSession: the one issued. */
  accessKeyId?: string;
  /** Human-readable message returned to the client. */
  message?: string;
}

export interface OperationStats {
  total: number;
  ok: number;
  /** Count per non-ok outcome (error type or `fault:<kind>`). */
  errors: Record<string, number>;
}

export interface EmulatorStats {
  createSession: OperationStats;
  sts: OperationStats;
  /** How many times each fault kind fired. */
  faultsInjected: Record<string, number>;
  /** Per-call log, oldest first (the most recent 10,000). */
  calls: CallRecord[];
}

export const MAX_CALL_LOG = 10_000;

export function emptyStats(): EmulatorStats {
  return { createSession: { total: 0, ok: 0, errors: {} }, sts: { total: 0, ok: 0, errors: {} }, faultsInjected: {}, calls: [] };
}

export interface EmulatorPolicy {
  anchors: X509Certificate[];
  region?: string;
  trustAnchorArns?: string[];
  profileArns?: string[];
  roleArns?: string[];
  /** Roles AssumeRole may give (with the ExternalId each requires); unset or empty: any role. */
  assumableRoles?: AssumableRole[];
  maxSkewSeconds: number;
}

export interface EmulatorState {
  policy: EmulatorPolicy;
  lifetimeSeconds: number;
  issued: IssuedCredential[];
  byAccessKey: Map<string, IssuedCredential>;
  stats: EmulatorStats;
  faults: FaultSet;
  now(): Date;
}

const KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const SECRET_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function randomFrom(alphabet: string, n: number): string {
  const bytes = randomBytes(n);
  let out = '';
  for (let i = 0; i < n; i++) out += alphabet[bytes[i]! % alphabet.length];
  return out;
}

/** `ASIA` + 16 characters: 20 in all, like real temporary access key ids. */
export function newAccessKeyId(): string {
  return 'ASIA' + randomFrom(KEY_ALPHABET, 16);
}

export function newSecretAccessKey(): string {
  return randomFrom(SECRET_ALPHABET, 40);
}

/** Long base64 like real session tokens (which contain + / and =). */
export function newSessionToken(): string {
  return 'IQoJb3JpZ2luX2VtdWxhdG9y' + randomBytes(600).toString('base64');
}

/** A stable role id (`AROA` + 17) derived from the role ARN. */
export function roleIdFor(roleArn: string): string {
  const h = createHash('sha256').update(roleArn).digest();
  let out = 'AROA';
  for (let i = 0; i < 17; i++) out += KEY_ALPHABET[h[i]! % KEY_ALPHABET.length];
  return out;
}

/** A stable UUID-shaped id derived from strings. */
export function stableUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function requestId(): string {
  return randomUUID();
}

/** Credentials remembered at most (long soak runs forget the oldest; STS then answers InvalidClientTokenId for them). */
export const MAX_ISSUED = 50_000;

/** Records credentials the emulator issued (CreateSession or AssumeRole), for STS to recognise. */
export function rememberIssued(state: EmulatorState, issued: IssuedCredential): void {
  state.issued.push(issued);
  state.byAccessKey.set(issued.accessKeyId, issued);
  if (state.issued.length > MAX_ISSUED) {
    for (const old of state.issued.splice(0, state.issued.length - MAX_ISSUED)) state.byAccessKey.delete(old.accessKeyId);
  }
}

export function recordCall(state: EmulatorState, call: CallRecord): void {
  const op = call.operation === 'CreateSession' ? state.stats.createSession : state.stats.sts;
  op.total += 1;
  if (call.outcome === 'ok') op.ok += 1;
  else op.errors[call.outcome] = (op.errors[call.outcome] ?? 0) + 1;
  state.stats.calls.push(call);
  if (state.stats.calls.length > MAX_CALL_LOG) state.stats.calls.splice(0, state.stats.calls.length - MAX_CALL_LOG);
}

export { isoSeconds } from '../timers.js';
