// What a handler answers; server.ts writes it to the socket.
import type { ReceivedRequest } from '../signing/verify.js';
import { requestId } from './state.js';

export type Answer = { status: number; headers: Record<string, string>; body: string } | { drop: true };

export type { ReceivedRequest };

/** A Roles Anywhere (REST-JSON) error: status, X-Amzn-ErrorType, `{"message"}`. */
export function restJsonError(status: number, type: string, message: string): Answer {
  return {
    status,
    headers: {
      'Content-Type': 'application/json',
      'X-Amzn-ErrorType': type,
      'X-Amzn-RequestId': requestId(),
    },
    body: JSON.stringify({ message }),
  };
}

export function json(status: number, value: unknown): Answer {
  return {
    status,
    headers: { 'Content-Type': 'application/json', 'X-Amzn-RequestId': requestId() },
    body: JSON.stringify(value),
  };
}

/** Default error type for an injected HTTP status. */
export function errorTypeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'ValidationException';
    case 403:
      return 'AccessDeniedException';
    case 404:
      return 'ResourceNotFoundException';
    case 429:
      return 'ThrottlingException';
    case 503:
      return 'ServiceUnavailableException';
    default:
      return status >= 500 ? 'InternalServerException' : 'ValidationException';
  }
}

export function defaultMessageForStatus(status: number): string {
  switch (status) {
    case 429:
      return 'Rate exceeded';
    case 503:
      return 'Service Unavailable';
    default:
      return status >= 500 ? 'Internal Server Error' : 'Injected failure';
  }
}

export function headerValue(req: ReceivedRequest, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}
