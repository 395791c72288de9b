// Types of the libraries the classic page bundles (checked by tsc --noEmit; not built).
declare module "jquery" {
  const jQuery: any;
  export default jQuery;
}
declare module "ipybridge:requirejs" {
  /** RequireJS's require.js run inside a function: what it defines (call with `this` = the window). */
  export default function installRequireJS(this: any): { requirejs: any; require: any; define: any };
}
