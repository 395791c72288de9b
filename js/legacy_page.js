// Entry of static/legacy_shim.js, the classic script the `%load_ext ipybridge`
// output runs: the kernel hub (js/legacy_shim.js) and the classic page around
// it (js/legacy_classic.js: jQuery, RequireJS, IPython/Jupyter).
import "./legacy_shim.js";
import { installClassic } from "./legacy_classic.js";

installClassic(window, /** @type {any} */ (window).__ipybridgeLegacy);
