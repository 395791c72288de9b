// Bundle each widget's entry module into src/ipybridge/static/ (ES modules
// that anywidget loads; shipped in the wheel, nothing to install in the page).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entries = ["bridge", "player", "legacy"];
const existing = [];
for (const name of entries) {
  try {
    await import("node:fs").then((fs) => fs.accessSync(join(root, "js", `${name}.js`)));
    existing.push(name);
  } catch {
    // an entry not written yet
  }
}
await build({
  entryPoints: existing.map((name) => join(root, "js", `${name}.js`)),
  outdir: join(root, "src", "ipybridge", "static"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: false,
  legalComments: "none",
  logLevel: "warning",
});
console.log(`built ${existing.join(", ")} into src/ipybridge/static/`);

// Classic scripts (no module syntax) that an output's application/javascript
// runs as is: the legacy API's shim.
for (const name of ["legacy_shim"]) {
  const source = join(root, "js", `${name}.js`);
  if (!(await import("node:fs")).existsSync(source)) continue;
  await build({
    entryPoints: [source],
    outfile: join(root, "src", "ipybridge", "static", `${name}.js`),
    bundle: true,
    format: "iife",
    target: "es2022",
    legalComments: "none",
    logLevel: "warning",
  });
}
