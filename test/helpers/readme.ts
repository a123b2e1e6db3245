// The user docs as tests read them: README.md, and the guides it links in docs/
// (docs/homes.md, docs/keys.md), their text and the markdown tables and code
// blocks under a heading.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './cli.js';

export const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const GUIDES = ['docs/homes.md', 'docs/keys.md'];
const docs = [readme, ...GUIDES.map((f) => readFileSync(join(REPO, f), 'utf8'))];

/** The text from `heading` on, in the README or the guide that has it. */
export function sectionFrom(heading: string): string {
  for (const text of docs) {
    const at = text.indexOf(heading);
    if (at >= 0) return text.slice(at);
  }
  throw new Error(`neither README.md nor ${GUIDES.join(', ')} has "${heading}"`);
}

/** The body of the `nth` (0 = first) fenced code block after the heading containing `heading`. */
export function blockAfter(heading: string, nth = 0): string {
  const blocks = [...sectionFrom(heading).matchAll(/```[a-z]*\n([\s\S]*?)```/g)];
  const m = blocks[nth];
  if (!m) throw new Error(`no code block #${nth + 1} after "${heading}"`);
  return m[1]!;
}

/** The markdown table that follows `heading`, as rows of cells (header row dropped). */
export function tableAfter(heading: string): string[][] {
  const lines = sectionFrom(heading).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(start)) {
    if (!line.startsWith('|')) break;
    if (/^\|\s*-+/.test(line)) continue;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(1);
}
