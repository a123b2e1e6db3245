// podman for the deploy tests (../shared/tools/container-runtime.sh sets it up: runc,
// cgroupfs, a local stand-in for node:24-trixie-slim): the command, why it cannot run
// here (a skip reason), and images built once per content.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CONF = '/etc/containers/containers.conf.d-local';
export const BASE_IMAGE = 'docker.io/library/node:24-trixie-slim';
const env = { ...process.env, ...(existsSync(CONF) ? { CONTAINERS_CONF: CONF } : {}) };

export function podman(args: string[], timeout = 120_000): Promise<{ stdout: string; stderr: string }> {
  return run('podman', args, { env, timeout, maxBuffer: 64 * 1024 * 1024 });
}

const succeeds = (args: string[]) => podman(args).then(() => true, () => false);

/** Why podman cannot run the base image here, or undefined when it can. */
export async function podmanSkipReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'podman runs containers on Linux only';
  if (!(await succeeds(['--version']))) return 'podman is not installed (../shared/tools/container-runtime.sh setup installs it)';
  if (!(await succeeds(['image', 'exists', BASE_IMAGE]))) return `the base image ${BASE_IMAGE} is missing (../shared/tools/container-runtime.sh setup makes a local one)`;
  return podman(['run', '--rm', '--network', 'host', BASE_IMAGE, 'node', '-e', '0']).then(
    () => undefined,
    (e: { stderr?: string }) => `podman cannot run a container here: ${(e.stderr ?? '').trim().split('\n').pop()}`,
  );
}

/** A tag named after `what` and a hash of `parts` (what the build reads). */
export function contentTag(name: string, parts: Array<string | Buffer>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return `localhost/${name}:${h.digest('hex').slice(0, 16)}`;
}

/** Builds `context` (its Dockerfile) as `tag` unless that image exists: one build per content. */
export async function buildOnce(tag: string, context: string): Promise<void> {
  if (await succeeds(['image', 'exists', tag])) return;
  // Slow on a shared 2-core machine (package installs, tsc, esbuild): minutes.
  await podman(['build', '--network', 'host', '--pull=never', '--format', 'docker', '-t', tag, context], 1_500_000);
}
