/**
 * The validated configuration the rest of the program consumes. Produced by
 * src/config (flags > environment > YAML file); everything here is already
 * checked, defaulted and resolved (regions, absolute paths).
 */

import type { DaemonSections, LOG_LEVELS, ProfileValues } from './settings.js';

/**
 * One Roles Anywhere identity + session to keep fresh: the profile rows of the
 * settings table (src/config/settings.ts), plus its name and a password given
 * directly. Paths are absolute; region is resolved (explicit, else the trust
 * anchor ARN's region).
 */
export type ProfileConfig = ProfileValues & {
  /** Profile name (the YAML key; `default` for a single flag-defined profile). */
  name: string;
  /** Password given directly (env ROLESANYWHERE_KEY_PASSWORD or --pkcs8-password). Never log it. */
  keyPassword?: string;
};

export type { ListenAddress } from '../net/listen-address.js';
import type { ListenAddress } from '../net/listen-address.js';

/**
 * The daemon's settings. Sections made of rows of the settings table
 * (`imds`, `refresh`, `watch`, and any a new row adds) come from DaemonSections.
 */
export type DaemonConfig = DaemonSections & {
  /** Where the config came from (file path), for messages. */
  source?: string;
  listen: ListenAddress[];
  /** Permit non-loopback listen addresses (warned). */
  allowNonLoopback: boolean;
  /** Serve local callers whose user cannot be looked up (no readable /proc/net/tcp): callers unenforced. */
  allowUnidentifiedCallers: boolean;
  /** Endpoint token file (created with 0600 when missing). */
  tokenFile: string;
  /** Keyed by profile name; at least one. */
  profiles: Record<string, ProfileConfig>;
  /** Served by GET /v1/credentials: the IMDS profile, or the only one. */
  defaultProfile?: string;
  logLevel: (typeof LOG_LEVELS)[number];
};
