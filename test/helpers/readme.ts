// README.md as tests read it: its text and the markdown tables under a heading.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './cli.js';

export const readme = readFileSync(join(REPO, 'README.md'), 'utf8');

/** The body of the `nth` (0 = first) fenced code block after the heading containing `heading`. */
export function blockAfter(heading: string, nth = 0): string {
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README has no "${heading}"`);
  const blocks = [...readme.slice(at).matchAll(/```[a-z]*\n([\s\S]*?)```/g)];
  const m = blocks[nth];
  if (!m) throw new Error(`no code block #${nth + 1} after "${heading}"`);
  return m[1]!;
}

/** The markdown table that follows `heading`, as rows of cells (header row dropped). */
export function tableAfter(heading: string): string[][] {
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README has no "${heading}"`);
  const lines = readme.slice(at).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith('|')) break;
    if (/^\|\s*-+/.test(line)) continue;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(1);
}
