// Prints the gzipped size of the JavaScript the first page load fetches, and fails the build
// when it passes the budget (200 KB gzipped, the Dashboard issue's limit).
import { readFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const BUDGET = 200 * 1024;
const dist = new URL('../dist/', import.meta.url).pathname;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
let raw = 0;
let gz = 0;
for (const f of initial) {
  const b = readFileSync(join(dist, f));
  raw += b.length;
  gz += gzipSync(b, { level: 9 }).length;
}
const css = readdirSync(join(dist, 'assets')).filter((f) => f.endsWith('.css'));
const cssGz = css.reduce((n, f) => n + gzipSync(readFileSync(join(dist, 'assets', f)), { level: 9 }).length, 0);
console.log(`initial JS: ${initial.length} file(s), ${(raw / 1024).toFixed(1)} KB, ${(gz / 1024).toFixed(1)} KB gzipped (budget ${BUDGET / 1024} KB); CSS ${(cssGz / 1024).toFixed(1)} KB gzipped`);
if (gz > BUDGET) {
  console.error(`initial JavaScript is over budget by ${((gz - BUDGET) / 1024).toFixed(1)} KB gzipped`);
  process.exit(1);
}
