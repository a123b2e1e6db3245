// The system packages the tests use, in one table: `npm test` (pretest) and .ci/run
// run this script, which installs what is missing where it can (root with apt-get)
// and otherwise says which test groups will be skipped and what would run them;
// test/helpers/needs.ts reads the same table, so a test without its tools is
// skipped with the group's name and packages (the summary line lists them), never
// failed or counted as passed.
//
//   node scripts/test-deps.js            # check, install with apt-get as root, report
//   node scripts/test-deps.js --check    # check and report only
//
// Plain ESM for any Node >= 18: it runs before `npm ci` in .ci/run.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Is `name` an executable on PATH (or, with a slash, that file)? */
export function onPath(name) {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name));
  return candidates.some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Is `file` in openssl's MODULESDIR (providers) or ENGINESDIR? */
function opensslDir(which, file) {
  const r = spawnSync('openssl', ['version', '-a'], { encoding: 'utf8' });
  const dir = new RegExp(`${which}: "([^"]+)"`).exec(r.stdout ?? '')?.[1];
  return dir !== undefined && existsSync(join(dir, file));
}

const anyFile = (...paths) => () => paths.some((p) => existsSync(p));
const isRoot = () => process.getuid?.() === 0;

/**
 * Each group: what the tests do with it, how to tell it is here, and the packages
 * per distribution (Debian/Ubuntu apt, Fedora dnf, macOS Homebrew; null: none there).
 * `root`: the tests also need to run as root (they act as other users or make network namespaces).
 */
export const GROUPS = [
  {
    id: 'openssl', name: 'test identities (openssl)', required: true,
    present: () => onPath('openssl'),
    apt: ['openssl'], dnf: ['openssl'], brew: ['openssl@3'],
  },
  {
    id: 'aws-cli-debian', name: "Debian's AWS CLI v2.9 at /usr/bin/aws (old-client interop)",
    present: () => onPath('/usr/bin/aws'),
    apt: ['awscli'], dnf: ['awscli2'], brew: null,
  },
  {
    id: 'aws-cli', name: 'an aws CLI on PATH (interop)',
    present: () => onPath('aws'),
    apt: ['awscli'], dnf: ['awscli2'], brew: ['awscli'],
  },
  {
    id: 'systemd', name: 'systemd unit verification (systemd-analyze)',
    present: () => onPath('systemd-analyze'),
    apt: ['systemd'], dnf: ['systemd'], brew: null,
  },
  {
    id: 'pkcs11', name: 'PKCS#11 keys (SoftHSM2 token, OpenSC, p11-kit, the openssl pkcs11 engine)',
    present: () => anyFile('/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/softhsm/libsofthsm2.so', '/usr/lib64/pkcs11/libsofthsm2.so')()
      && onPath('softhsm2-util') && onPath('pkcs11-tool') && onPath('p11-kit') && onPath('pgrep')
      && anyFile('/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so', '/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so', '/usr/lib64/p11-kit-proxy.so')()
      && opensslDir('ENGINESDIR', 'pkcs11.so'),
    apt: ['softhsm2', 'opensc', 'p11-kit', 'p11-kit-modules', 'libengine-pkcs11-openssl', 'procps'],
    dnf: ['softhsm', 'opensc', 'p11-kit-server', 'openssl-pkcs11', 'procps-ng'],
    brew: ['softhsm', 'opensc', 'p11-kit', 'libp11'],
  },
  {
    id: 'pkcs11js', name: 'the pkcs11js addon `npm ci` compiles (C++ toolchain)',
    present: () => onPath('g++') && onPath('make') && onPath('python3'),
    apt: ['g++', 'make', 'python3'], dnf: ['gcc-c++', 'make', 'python3'], brew: null,
  },
  {
    id: 'tpm', name: 'TPM 2.0 keys (swtpm, tpm2-tools, the openssl tpm2 provider)',
    present: () => onPath('swtpm') && onPath('swtpm_setup') && onPath('tpm2_flushcontext') && opensslDir('MODULESDIR', 'tpm2.so'),
    apt: ['swtpm', 'swtpm-tools', 'tpm2-tools', 'tpm2-openssl'], dnf: ['swtpm', 'swtpm-tools', 'tpm2-tools', 'tpm2-openssl'], brew: ['swtpm', 'tpm2-tools'],
  },
  {
    id: 'netns', name: 'pod identity on 169.254.170.23 in a network namespace (ip, as root)', root: true,
    present: () => onPath('ip'),
    apt: ['iproute2'], dnf: ['iproute'], brew: null,
  },
  {
    id: 'acl', name: "the README's token-sharing recipe (setfacl, as root)", root: true,
    present: () => onPath('setfacl') && onPath('setpriv'),
    apt: ['acl', 'util-linux'], dnf: ['acl', 'util-linux-core'], brew: null,
  },
  {
    id: 'other-user', name: 'clients run as another local user (setpriv, as root)', root: true,
    present: () => onPath('setpriv'),
    apt: ['util-linux'], dnf: ['util-linux-core'], brew: null,
  },
];

/** Why the group `id` cannot run here (naming what would run it), or undefined when it can. */
export function missing(id) {
  const g = GROUPS.find((x) => x.id === id);
  if (!g) throw new Error(`no test group ${id} in scripts/test-deps.js`);
  if (!g.present()) return `needs ${g.name}: ${installHint(g)}`;
  if (g.root && !isRoot()) return `needs ${g.name}: run the tests as root`;
  return undefined;
}

function installHint(g) {
  const ways = [`apt-get install ${g.apt.join(' ')}`];
  if (g.dnf) ways.push(`dnf install ${g.dnf.join(' ')}`);
  if (g.brew) ways.push(`brew install ${g.brew.join(' ')}`);
  return ways.join(' | ');
}

function main() {
  const install = !process.argv.includes('--check');
  let absent = GROUPS.filter((g) => !g.present());
  if (install && absent.length && isRoot() && onPath('apt-get')) {
    const pkgs = [...new Set(absent.flatMap((g) => g.apt))];
    console.error(`[test-deps] installing ${pkgs.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env });
    const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) console.error(`[test-deps] apt-get install failed (status ${r.status})`);
    absent = GROUPS.filter((g) => !g.present());
  }
  for (const g of GROUPS) {
    const why = absent.includes(g) ? `missing: ${installHint(g)}` : g.root && !isRoot() ? 'not root: skipped' : undefined;
    if (why) console.error(`[test-deps] ${g.required ? 'REQUIRED ' : ''}${g.name} — ${why}`);
  }
  if (!absent.length && (isRoot() || !GROUPS.some((g) => g.root))) console.error('[test-deps] every test group can run');
  return absent.some((g) => g.required) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
