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

// The classic script that the `%load_ext ipybridge` output runs as is: the legacy
// API's hub and the classic page (jQuery and RequireJS from npm, bundled).
// RequireJS is a browser script with top-level `var`s (not a module): it is
// wrapped into a function that returns what it defines, so nothing leaks until
// the legacy API installs it.
const requirejsPlugin = {
  name: "requirejs-source",
  setup(b) {
    b.onResolve({ filter: /^ipybridge:requirejs$/ }, () => ({ path: "requirejs", namespace: "requirejs-source" }));
    b.onLoad({ filter: /.*/, namespace: "requirejs-source" }, async () => {
      const fs = await import("node:fs");
      const source = fs.readFileSync(join(root, "node_modules", "requirejs", "require.js"), "utf8");
      const contents =
        "export default function installRequireJS() {\n" +
        source +
        "\nreturn { requirejs: requirejs, require: require, define: define };\n}\n";
      return { contents, loader: "js", resolveDir: root };
    });
  },
};
await build({
  entryPoints: [join(root, "js", "legacy_page.js")],
  outfile: join(root, "src", "ipybridge", "static", "legacy_shim.js"),
  bundle: true,
  format: "iife",
  target: "es2022",
  minify: true,
  legalComments: "inline",
  logLevel: "error",
  plugins: [requirejsPlugin],
});
