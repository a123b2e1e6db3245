// The project's own Dockerfile built and run by a real container runtime (podman, set
// up by ../shared/tools/container-runtime.sh): as the image's user, with a read-only
// root and podman's default --tmpfs (mode 1777) for the token directory, and as an
// OpenShift-style arbitrary uid without a passwd entry. Each serves credentials from
// the emulator on the host (--network host) to a client inside the container, and the
// image's HEALTHCHECK (kept by --format docker) reports healthy.
//
// One build per content: the image is tagged with a hash of the build context's
// files, so a second run with the same sources reuses it.
import { chmod, chown, copyFile, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import t from 'tap';
import { REPO } from '../helpers/cli.js';
import { freePort } from '../helpers/daemon.js';
import { startTestEmulator } from '../helpers/emulator.js';
import { tempDir } from '../helpers/pki.js';
import { BASE_IMAGE as BASE, buildOnce, contentTag, podman, podmanSkipReason } from '../helpers/podman.js';

/** The files the Dockerfile reads (its COPY sources) with their paths: what the image tag hashes. */
async function contextParts(): Promise<Array<string | Buffer>> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else files.push(p);
    }
  };
  for (const d of ['src', 'config']) await walk(join(REPO, d));
  files.push(...['Dockerfile', '.dockerignore', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts/bundle.js'].map((f) => join(REPO, f)));
  const parts: Array<string | Buffer> = [];
  for (const f of files.sort()) parts.push(relative(REPO, f), await readFile(f));
  return parts;
}


const skip = await podmanSkipReason();
if (skip) t.plan(0, skip);
else await main();

async function main() {
  t.setTimeout(1_800_000);
  const image = contentTag('rolesanywhere-credentiald-test', await contextParts());
  t.before(() => buildOnce(image, REPO));

  t.test('the runtime stage ships the bundle and config/ only; its size next to the base image', async (t) => {
    const { stdout } = await podman(['run', '--rm', '--network', 'host', '--user', '0', '--entrypoint', 'sh', image, '-c', 'ls -A /app /app/dist; find / -xdev -name node_modules -not -path "/usr/local/lib/*"']);
    t.same(stdout.trim().split('\n'), ['/app:', 'config', 'dist', '', '/app/dist:', 'bundle'], '/app holds dist/bundle and config, no node_modules anywhere but npm\'s own');
    const size = async (ref: string) => Number((await podman(['image', 'inspect', '--format', '{{.Size}}', ref])).stdout.trim());
    const [mine, base] = [await size(image), await size(BASE)];
    t.comment(`image ${(mine / 1e6).toFixed(1)} MB, base ${BASE} ${(base / 1e6).toFixed(1)} MB`);
    t.ok(mine - base < 10e6, `the image adds less than 10 MB to its base (adds ${((mine - base) / 1e6).toFixed(1)} MB)`);
  });

  const cases: Array<{ name: string; uid: number; args: string[] }> = [
    { name: 'default user', uid: 1000, args: [] },
    // podman's --read-only also mounts a tmpfs on /run, and a --tmpfs below it comes out 1755
    // (podman 4.3; docker mounts none there): --read-only-tmpfs=false gives docker's behaviour.
    { name: 'read-only root, default --tmpfs (1777) for the token directory', uid: 1000, args: ['--read-only', '--read-only-tmpfs=false', '--tmpfs', '/var/run/rolesanywhere'] },
    { name: 'arbitrary uid without a passwd entry (OpenShift)', uid: 1000680000, args: ['--user', '1000680000:0'] },
  ];

  for (const c of cases) {
    t.test(`serves credentials to a client in the container: ${c.name}`, async (t) => {
      const emu = await startTestEmulator(t);
      // The certificate and key as a Secret volume would give them: read-only, readable by the container's uid.
      const secrets = await tempDir('ra-container-');
      await chmod(secrets, 0o755);
      for (const [from, to] of [
        [emu.leaf.certPath, 'cert.pem'],
        [emu.leaf.keyPath, 'key.pem'],
      ] as const) {
        await copyFile(from, join(secrets, to));
        await chown(join(secrets, to), c.uid, 0);
        await chmod(join(secrets, to), 0o400);
      }
      const name = `ra-test-${process.pid}-${cases.indexOf(c)}`;
      await podman(['rm', '-f', name]).catch(() => undefined);
      t.teardown(() => podman(['rm', '-f', '-t', '0', name]).catch(() => undefined));
      // Not the image's default 9911: with --network host another test on this host may hold it. The
      // health check is the image's own HEALTHCHECK command, pointed at the same port.
      const port = await freePort();
      const [, ...healthTest] = JSON.parse((await podman(['image', 'inspect', '--format', '{{json .Config.Healthcheck.Test}}', image])).stdout) as string[];
      const healthCmd = JSON.stringify(healthTest.map((a) => a.replace('127.0.0.1:9911', `127.0.0.1:${port}`)));
      await podman([
        'run', '-d', '--name', name, '--network', 'host', ...c.args,
        '-v', `${secrets}:/etc/ra:ro`,
        '-e', `ROLESANYWHERE_LISTEN=127.0.0.1:${port}`, '--health-cmd', healthCmd,
        image, 'serve',
        '--certificate', '/etc/ra/cert.pem', '--private-key', '/etc/ra/key.pem',
        '--trust-anchor-arn', emu.arns.trustAnchorArn, '--profile-arn', emu.arns.profileArn, '--role-arn', emu.arns.roleArn,
        '--endpoint', emu.url,
      ]);
      // The client: Node in the container, the endpoint and token file the image documents.
      const client = `
        const fs = require('node:fs');
        const deadline = Date.now() + 60000;
        (async () => {
          for (;;) {
            try {
              const token = fs.readFileSync('/var/run/rolesanywhere/token', 'utf8');
              const r = await fetch('http://127.0.0.1:${port}/v1/credentials', { headers: { Authorization: token } });
              if (r.status === 200) {
                const b = await r.json();
                console.log(JSON.stringify({ AccessKeyId: b.AccessKeyId, secret: typeof b.SecretAccessKey, token: typeof b.Token, expiration: typeof b.Expiration, roleArn: b.RoleArn, keys: Object.keys(b).sort() }));
                return;
              }
            } catch {}
            if (Date.now() > deadline) { console.log('{"error":"no credentials within 60 s"}'); process.exit(1); }
            await new Promise((r) => setTimeout(r, 250));
          }
        })();`;
      const res: Record<string, unknown> = await podman(['exec', name, 'node', '-e', client]).then(
        (r) => {
          try {
            return JSON.parse(r.stdout) as Record<string, unknown>;
          } catch {
            return { error: `not JSON: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}` };
          }
        },
        async (e: { code?: number; stdout?: string; stderr?: string }) => {
          const logs = await podman(['logs', name]).then((r) => r.stdout + r.stderr, () => '');
          return { error: `podman exec: exit ${e.code} ${e.stdout ?? ''} ${e.stderr ?? ''}`.trim(), logs: logs.slice(-2000) };
        },
      );
      t.notOk(res.error, `the client got credentials${res.error ? `: ${String(res.error)}\n${String(res.logs)}` : ''}`);
      if (res.error) return;
      t.same(res.keys, ['AccessKeyId', 'AccountId', 'Expiration', 'RoleArn', 'SecretAccessKey', 'Token'], 'the container endpoint\'s JSON');
      t.equal(res.roleArn, emu.arns.roleArn);
      t.same([res.secret, res.token, res.expiration], ['string', 'string', 'string']);
      t.ok(emu.emulator.issued.some((i) => i.accessKeyId === res.AccessKeyId), 'the key id the emulator issued');

      if (c.args.includes('--tmpfs')) {
        const mode = (await podman(['exec', name, 'stat', '-c', '%a %U', '/var/run/rolesanywhere'])).stdout.trim();
        t.equal(mode, '1777 root', 'the token directory is the tmpfs as podman made it');
      }
      const who = (await podman(['exec', name, 'id', '-u'])).stdout.trim();
      t.equal(who, String(c.uid), `runs as uid ${c.uid}`);
      const hc = await podman(['healthcheck', 'run', name]).then(
        (r) => ({ code: 0, out: r.stdout.trim() }),
        (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() }),
      );
      t.equal(hc.code, 0, `podman healthcheck run: healthy (${hc.out})`);
    });
  }
}
