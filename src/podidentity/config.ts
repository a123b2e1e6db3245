// The `podIdentity` section of the daemon config: its type, defaults and
// validator (field-path problems like the rest of the config).
// Imports nothing from config/ but problems.ts: the settings table imports this module.
import { isPlainObject, nameList, show, typeName, unknownKeyMessage, type Problem, type SectionContext } from '../problems.js';
import { parseListenAddress, type ListenAddress } from '../net/listen-address.js';
import { isLoopbackHostname } from '../net/loopback.js';
import { shadowedBy, type Binding } from './bindings.js';
import type { JwksConfig } from './jwks.js';

/** EKS Pod Identity's addresses: SDKs accept plain http to them, so habits and defaults carry over. */
export const DEFAULT_POD_LISTEN: readonly ListenAddress[] = [
  { host: '169.254.170.23', port: 80 },
  { host: 'fd00:ec2::23', port: 80 },
];
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 3600;
export const DEFAULT_REFETCH_INTERVAL_SECONDS = 10;
/** Longest a pod token may be valid (exp − iat, and exp − now): kubelet's projected tokens live 1 h by default. */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 86_400;

export interface PodIdentityConfig {
  listen: ListenAddress[];
  issuer: string;
  audiences: string[];
  jwks: JwksConfig & { refetchIntervalSeconds: number };
  bindings: Binding[];
  /** onDemand: a binding's session starts on its first request; atStart: with the daemon. */
  sessionStart: 'onDemand' | 'atStart';
  /** Suspend a binding-only session nobody asked for in this long; 0 = never. */
  idleTimeoutSeconds: number;
  /** Tokens valid for longer than this (exp − iat, or exp − now) are refused. */
  maxTokenLifetimeSeconds: number;
}

export const POD_IDENTITY_KEYS = ['listen', 'issuer', 'audiences', 'jwks', 'bindings', 'sessionStart', 'idleTimeoutSeconds', 'maxTokenLifetimeSeconds'] as const;
const JWKS_KEYS = ['file', 'url', 'caFile', 'tokenFile', 'refetchIntervalSeconds'] as const;
const BINDING_KEYS = ['namespace', 'serviceAccount', 'profile'] as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Validates `podIdentity` (undefined/null = not configured) on its own: shape,
 * values, bindings that can never match. File paths come back as written;
 * `finishPodIdentity` resolves them and checks the profiles and addresses.
 */
export function checkPodIdentity(raw: unknown, path: string, problems: Problem[]): PodIdentityConfig | undefined {
  if (raw === undefined || raw === null) return undefined;
  const before = problems.length;
  const add = (sub: string, message: string) => problems.push({ path: `${path}${sub}`, message });
  if (!isPlainObject(raw)) {
    add('', `expected a mapping with issuer, audiences, jwks and bindings, got ${typeName(raw)}`);
    return undefined;
  }
  for (const k of Object.keys(raw)) if (!(POD_IDENTITY_KEYS as readonly string[]).includes(k)) add(`.${k}`, unknownKeyMessage(k, POD_IDENTITY_KEYS));
  const nonEmpty = (v: unknown, path: string, what: string): string | undefined => {
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
    add(path, v === undefined || v === null ? `required: ${what}` : `expected ${what}, got ${typeof v === 'string' ? 'an empty string' : typeName(v)}`);
    return undefined;
  };

  // listen
  const listen: ListenAddress[] = [];
  if (raw.listen === undefined || raw.listen === null) listen.push(...DEFAULT_POD_LISTEN.map((a) => ({ ...a })));
  else if (!Array.isArray(raw.listen) || raw.listen.length === 0) add('.listen', `expected a non-empty list of "host:port", e.g. ["169.254.170.23:80", "[fd00:ec2::23]:80"], got ${show(raw.listen)}`);
  else {
    raw.listen.forEach((text: unknown, i: number) => {
      if (typeof text !== 'string') return add(`.listen[${i}]`, `expected "host:port", got ${typeName(text)}`);
      const r = parseListenAddress(text);
      if (!r.address) return add(`.listen[${i}]`, r.error!);
      listen.push(r.address);
    });
  }

  const issuer = nonEmpty(raw.issuer, '.issuer', "the cluster's service-account issuer (kube-apiserver --service-account-issuer, e.g. https://kubernetes.default.svc.cluster.local)");

  // audiences
  let audiences: string[] = [];
  if (!Array.isArray(raw.audiences) || raw.audiences.length === 0) {
    add('.audiences', `${raw.audiences === undefined ? 'required: ' : ''}a non-empty list of accepted token audiences, e.g. ["rolesanywhere-credentiald"] (the projected volume's audience)${raw.audiences === undefined ? '' : `, got ${show(raw.audiences)}`}`);
  } else {
    audiences = raw.audiences.flatMap((a: unknown, i: number) => {
      const v = nonEmpty(a, `.audiences[${i}]`, 'an audience string');
      return v === undefined ? [] : [v];
    });
  }

  // jwks
  let jwks: PodIdentityConfig['jwks'] | undefined;
  const j = raw.jwks;
  if (!isPlainObject(j)) {
    add('.jwks', `${j === undefined ? 'required: ' : ''}where the cluster's signing keys are: { file: /path/jwks.json } or { url: https://kubernetes.default.svc/openid/v1/jwks, caFile: …, tokenFile: … }${j === undefined ? '' : `, got ${typeName(j)}`}`);
  } else {
    for (const k of Object.keys(j)) if (!(JWKS_KEYS as readonly string[]).includes(k)) add(`.jwks.${k}`, unknownKeyMessage(k, JWKS_KEYS));
    const path = (k: 'file' | 'caFile' | 'tokenFile') => {
      return nonEmpty(j[k], `.jwks.${k}`, 'a file path');
    };
    let refetch = DEFAULT_REFETCH_INTERVAL_SECONDS;
    if (j.refetchIntervalSeconds !== undefined && j.refetchIntervalSeconds !== null) {
      const n = j.refetchIntervalSeconds;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 3600) add('.jwks.refetchIntervalSeconds', `must be whole seconds from 1 to 3600, got ${show(n)}`);
      else refetch = n;
    }
    if (j.file !== undefined && j.url !== undefined) add('.jwks', 'give either file or url, not both');
    else if (j.file !== undefined) {
      for (const k of ['caFile', 'tokenFile'] as const) if (j[k] !== undefined) add(`.jwks.${k}`, 'only applies to jwks.url (the file form reads no network)');
      const file = path('file');
      if (file) jwks = { file, refetchIntervalSeconds: refetch };
    } else if (j.url !== undefined) {
      const text = nonEmpty(j.url, '.jwks.url', 'the JWKS URL');
      let url: URL | undefined;
      try {
        if (text) url = new URL(text);
      } catch {
        add('.jwks.url', `not a URL: ${show(withoutUserinfo(text!))}`);
      }
      if (url) {
        // Credentials first: the https message quotes the URL, and must not quote a password.
        if (url.username || url.password) add('.jwks.url', 'must not contain credentials; use jwks.tokenFile for the bearer token');
        else if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHostname(url.hostname))) {
          add('.jwks.url', `must be https (plain http only to a loopback address), got ${show(text)}`);
        } else {
          const out: PodIdentityConfig['jwks'] = { url: url.toString(), refetchIntervalSeconds: refetch };
          if (j.caFile !== undefined) {
            const ca = path('caFile');
            if (ca) out.caFile = ca;
          }
          if (j.tokenFile !== undefined) {
            const tf = path('tokenFile');
            if (tf) out.tokenFile = tf;
          }
          jwks = out;
        }
      }
    } else add('.jwks', 'give file (a JWKS file) or url (the API server\'s /openid/v1/jwks)');
  }

  // bindings
  const bindings: Binding[] = [];
  /** Position in the YAML list of each accepted binding (for messages). */
  const indexOf: number[] = [];
  if (!Array.isArray(raw.bindings) || raw.bindings.length === 0) {
    add('.bindings', `${raw.bindings === undefined ? 'required: ' : ''}a non-empty list like [{ namespace: shop, serviceAccount: checkout, profile: checkout }]${raw.bindings === undefined ? '' : `, got ${show(raw.bindings)}`}`);
  } else {
    raw.bindings.forEach((b: unknown, i: number) => {
      const p = `.bindings[${i}]`;
      if (!isPlainObject(b)) return add(p, `expected { namespace, serviceAccount, profile }, got ${typeName(b)}`);
      for (const k of Object.keys(b)) if (!(BINDING_KEYS as readonly string[]).includes(k)) add(`${p}.${k}`, unknownKeyMessage(k, BINDING_KEYS));
      const ns = nonEmpty(b.namespace, `${p}.namespace`, 'a namespace name');
      const sa = nonEmpty(b.serviceAccount, `${p}.serviceAccount`, 'a service account name or "*"');
      const profile = nonEmpty(b.profile, `${p}.profile`, 'the name of a profile under profiles');
      let ok = ns !== undefined && sa !== undefined && profile !== undefined;
      if (ns !== undefined && !(ns.length <= 63 && DNS_LABEL.test(ns))) {
        add(`${p}.namespace`, ns === '*' ? 'must name one namespace ("*" is allowed only for serviceAccount, so no binding grants a role to every namespace)' : `${show(ns)} is not a Kubernetes namespace name (lowercase letters, digits, -)`);
        ok = false;
      }
      if (sa !== undefined && sa !== '*' && !(sa.length <= 253 && DNS_SUBDOMAIN.test(sa))) {
        add(`${p}.serviceAccount`, `${show(sa)} is not a service account name (lowercase letters, digits, - and .) or "*"`);
        ok = false;
      }
      if (ok) {
        bindings.push({ namespace: ns!, serviceAccount: sa!, profile: profile! });
        indexOf.push(i);
      }
    });
    bindings.forEach((b, i) => {
      const by = shadowedBy(bindings, i);
      if (by >= 0) {
        const a = bindings[by]!;
        add(`.bindings[${indexOf[i]}]`, `can never match: bindings[${indexOf[by]}] (${a.namespace}/${a.serviceAccount}) already matches ${b.namespace}/${b.serviceAccount} (first match wins); remove it or move it up`);
      }
    });
  }

  let sessionStart: PodIdentityConfig['sessionStart'] = 'onDemand';
  if (raw.sessionStart !== undefined && raw.sessionStart !== null) {
    if (raw.sessionStart === 'onDemand' || raw.sessionStart === 'atStart') sessionStart = raw.sessionStart;
    else add('.sessionStart', `expected onDemand or atStart, got ${show(raw.sessionStart)}`);
  }
  let idleTimeoutSeconds = DEFAULT_IDLE_TIMEOUT_SECONDS;
  if (raw.idleTimeoutSeconds !== undefined && raw.idleTimeoutSeconds !== null) {
    const n = raw.idleTimeoutSeconds;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 604_800) add('.idleTimeoutSeconds', `must be whole seconds from 0 (never stop) to 604800, got ${show(n)}`);
    else idleTimeoutSeconds = n;
  }

  let maxTokenLifetimeSeconds = DEFAULT_MAX_TOKEN_LIFETIME_SECONDS;
  if (raw.maxTokenLifetimeSeconds !== undefined && raw.maxTokenLifetimeSeconds !== null) {
    const n = raw.maxTokenLifetimeSeconds;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 600 || n > 31_536_000) add('.maxTokenLifetimeSeconds', `must be whole seconds from 600 to 31536000 (a year), got ${show(n)}`);
    else maxTokenLifetimeSeconds = n;
  }

  if (problems.length > before || !issuer || !jwks) return undefined;
  return { listen, issuer, audiences, jwks, bindings, sessionStart, idleTimeoutSeconds, maxTokenLifetimeSeconds };
}

/** After the whole config is read: paths resolved, bound profiles exist, no address shared with the ordinary listeners. */
export function finishPodIdentity(value: PodIdentityConfig, ctx: SectionContext): PodIdentityConfig | undefined {
  const before = ctx.problems.length;
  const add = (sub: string, message: string) => ctx.problems.push({ path: `${ctx.path}${sub}`, message });
  value.bindings.forEach((b, i) => {
    if (!ctx.profiles.includes(b.profile)) add(`.bindings[${i}].profile`, `no profile named ${show(b.profile)}; defined profiles: ${nameList(ctx.profiles) || '(none)'}`);
  });
  const ordinary = new Set(ctx.listen.map((a) => `${a.host.toLowerCase()}|${a.port}`));
  value.listen.forEach((a, i) => {
    if (a.port !== 0 && ordinary.has(`${a.host.toLowerCase()}|${a.port}`)) {
      add(`.listen[${i}]`, `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port} is also an ordinary listen address; a pod-identity listener needs its own address`);
    }
  });
  if (ctx.problems.length > before) return undefined;
  const jwks = { ...value.jwks };
  if ('file' in jwks) jwks.file = ctx.resolvePath(jwks.file);
  else {
    if (jwks.caFile) jwks.caFile = ctx.resolvePath(jwks.caFile);
    if (jwks.tokenFile) jwks.tokenFile = ctx.resolvePath(jwks.tokenFile);
  }
  return { ...value, jwks };
}

/** A URL-like text with any `user:password@` cut out, for quoting in messages. */
function withoutUserinfo(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1…@');
}
