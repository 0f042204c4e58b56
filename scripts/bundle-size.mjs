// Prints the release /login bundle (WASM + JS + CSS) raw, gzip and brotli.
// Usage: node scripts/bundle-size.mjs [site-root]   (after `cargo leptos build --release`)
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const pkg = path.join(process.argv[2] ?? "target/site", "pkg");
const files = readdirSync(pkg).filter((f) => /\.(wasm|js|css)$/.test(f)).sort();
const kb = (n) => (n / 1024).toFixed(1).padStart(8);
let total = { raw: 0, gzip: 0, brotli: 0 };
console.log(`${"file".padEnd(24)}      raw KB  gzip KB brotli KB`);
for (const file of files) {
  const data = readFileSync(path.join(pkg, file));
  const sizes = {
    raw: data.length,
    gzip: gzipSync(data, { level: 9 }).length,
    brotli: brotliCompressSync(data, {
      params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: data.length },
    }).length,
  };
  for (const k of Object.keys(total)) total[k] += sizes[k];
  console.log(`${file.padEnd(24)} ${kb(sizes.raw)} ${kb(sizes.gzip)} ${kb(sizes.brotli)}`);
}
console.log(`${"total".padEnd(24)} ${kb(total.raw)} ${kb(total.gzip)} ${kb(total.brotli)}`);
