// Prints the production bundle size (raw and gzip) of dashboard/dist.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../dist", import.meta.url));
const files = [];
(function walk(d) {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
})(dist);
let raw = 0;
let gz = 0;
for (const f of files) {
  const b = readFileSync(f);
  raw += b.length;
  if (/\.(js|css|html)$/.test(f)) gz += gzipSync(b).length;
}
const kb = (n) => (n / 1024).toFixed(1) + " KiB";
console.log(`bundle: ${files.length} files in ${relative(process.cwd(), dist) || "dist"}: ${kb(raw)} raw, ${kb(gz)} gzip (js+css+html)`);
