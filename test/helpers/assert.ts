// Small assertion helpers shared by test files.
import { createHash } from 'node:crypto';

/** sha256 hex: compare secrets by digest so a failing assertion never prints one. */
export const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The error a promise rejects with; throws if it resolves. */
export async function rejection<E = Error>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (err) {
    return err as E;
  }
  throw new Error('expected a rejection');
}
