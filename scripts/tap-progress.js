// tap reporter (package.json "tap".reporter): one line per test file as it ends,
// the failures in full, and at the end one summary line that names every skipped
// group with what would run it (test/helpers/needs.ts words those reasons from
// scripts/test-deps.js). Skipped tests are counted apart: never as passed.
//
//   ok   test/cli/check.test.ts          57 passed
//   FAIL test/cli/serve.test.ts          40 passed, 2 failed
//   skip test/interop/tpm.test.ts        needs TPM 2.0 keys (...): apt-get install swtpm ...
//   ...
//   6150 passed, 0 failed, 38 skipped — needs TPM 2.0 keys (...): apt-get install ... (2 files); ...
//
// tap pipes its TAP stream into this Transform and this writes text to stdout.
import { Transform } from 'node:stream';
import { inspect } from 'node:util';
import { Parser } from 'tap-parser';

export default class Progress extends Transform {
  #parser = new Parser();
  #totals = { pass: 0, fail: 0, skip: 0, todo: 0 };
  /** skip reason → files */
  #skips = new Map();
  #files = 0;
  /** files already reported with failures */
  #failedFiles = new Set();

  constructor() {
    super();
    this.#parser.on('child', (child) => this.#file(child));
    // A file whose process failed after its last test (timeout, exit status, a late error) fails here.
    this.#parser.on('assert', (a) => {
      if (a.ok || a.skip || a.todo || this.#failedFiles.has(a.name)) return;
      this.#totals.fail++;
      this.#line(`FAIL ${a.name.padEnd(48)} the test process failed`);
      if (a.diag) this.#line(inspect(a.diag, { depth: 3, breakLength: 120 }).split('\n').slice(0, 30).map((l) => `       ${l}`).join('\n'));
    });
    this.#parser.on('complete', (results) => this.#end(results));
  }

  _transform(chunk, _enc, done) {
    this.#parser.write(chunk);
    done();
  }

  _flush(done) {
    this.#parser.end();
    done();
  }

  #line(s) {
    this.push(`${s}\n`);
  }

  #skipped(reason, file) {
    const key = typeof reason === 'string' && reason ? reason : 'skipped (no reason given)';
    if (!this.#skips.has(key)) this.#skips.set(key, new Set());
    this.#skips.get(key).add(file);
  }

  /** One test file (a top-level subtest of the run). */
  #file(child) {
    const file = child.name;
    const counts = { pass: 0, fail: 0, skip: 0, todo: 0 };
    const failures = [];
    const reasons = new Set();
    const watch = (p, path) => {
      let lastChild;
      p.on('child', (c) => {
        lastChild = c;
        watch(c, [...path, c.name]);
      });
      p.on('assert', (a) => {
        // The point that closes a subtest is not an assertion of its own (unless it failed without any).
        if (lastChild && a.name === lastChild.name) {
          lastChild = undefined;
          if (a.ok || a.skip || a.todo) return;
          if (failures.some((f) => f.path.join(' > ').startsWith([...path, a.name].join(' > ')))) return;
        }
        if (a.skip) {
          counts.skip++;
          // t.skip(message) carries its reason as the name.
          reasons.add(typeof a.skip === 'string' ? a.skip : a.name);
        } else if (a.todo) counts.todo++;
        else if (a.ok) counts.pass++;
        else {
          counts.fail++;
          failures.push({ path: [...path, a.name], diag: a.diag });
        }
      });
    };
    watch(child, []);
    child.on('complete', (results) => {
      this.#files++;
      if (results.plan?.skipAll) {
        counts.skip++;
        reasons.add(results.plan.skipReason || '');
      }
      if (!results.ok && counts.fail === 0) {
        counts.fail++;
        failures.push({ path: ['(the file failed: exit status, timeout or an error outside any test)'], diag: results.failures?.[0]?.diag });
      }
      // One entry per group: "needs A: …; needs B: …" names two; a reason with its own prefix ("name: needs A: …") counts as A.
      const groups = new Set([...reasons].flatMap((r) => r.split(/; (?=needs )/).map((one) => one.replace(/^.*?(?=needs )/, ''))));
      for (const g of groups) this.#skipped(g, file);
      for (const k of Object.keys(counts)) this.#totals[k] += counts[k];
      const parts = [`${counts.pass} passed`];
      if (counts.fail) parts.push(`${counts.fail} failed`);
      if (counts.skip) parts.push(`${counts.skip} skipped: ${[...groups].map((r) => r || 'no reason given').join('; ')}`);
      if (counts.todo) parts.push(`${counts.todo} todo`);
      if (counts.fail) this.#failedFiles.add(file);
      const status = counts.fail ? 'FAIL' : counts.pass === 0 && counts.skip ? 'skip' : 'ok  ';
      this.#line(`${status} ${file.padEnd(48)} ${parts.join(', ')}`);
      for (const f of failures) {
        this.#line(`     not ok ${f.path.join(' > ')}`);
        if (!f.diag) continue;
        const { source: _source, diff, stack: _stack, ...rest } = f.diag;
        const shown = [inspect(rest, { depth: 4, breakLength: 120 }), ...(typeof diff === 'string' ? [diff.trimEnd()] : [])].join('\n');
        this.#line(shown.split('\n').slice(0, 40).map((l) => `       ${l}`).join('\n'));
      }
    });
  }

  #end(results) {
    const { pass, fail, skip, todo } = this.#totals;
    // A failure outside any file (a bail out, a runner error) still fails the summary.
    const failed = fail || (results.ok ? 0 : 1);
    // The summary names each group and the Debian/Ubuntu packages (the file lines above also give dnf and brew).
    const groups = [...this.#skips].map(([reason, files]) => `${reason.split(' | ')[0]} (${files.size} file${files.size === 1 ? '' : 's'})`);
    const tail = [`${pass} passed`, `${failed} failed`];
    if (todo) tail.push(`${todo} todo`);
    tail.push(skip ? `${skip} skipped, not counted as passed — ${groups.join('; ')}` : '0 skipped');
    this.#line('');
    this.#line(`${this.#files} test files: ${tail.join(', ')}`);
  }
}
