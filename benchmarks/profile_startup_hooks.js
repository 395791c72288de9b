// Installed by profile_startup.py before the page's own scripts (Playwright's add_init_script).
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const log = (window.__tl = []);
  const dec = new TextDecoder();
  const describe = (data) => {
    try {
      if (typeof data === "string") {
        const m = JSON.parse(data);
        return { type: m.header?.msg_type, date: m.header?.date, channel: m.channel, bytes: data.length,
                 comm: m.content?.data?.method ?? "" };
      }
      const buf = data instanceof ArrayBuffer ? data : data.buffer;
      const view = new DataView(buf);
      const n = Number(view.getBigUint64(0, true));
      const offs = [];
      for (let i = 0; i <= n; i++) offs.push(Number(view.getBigUint64(8 * (i + 1), true)));
      const part = (i) => dec.decode(new Uint8Array(buf, offs[i], (offs[i + 1] ?? buf.byteLength) - offs[i]));
      const channel = part(0);
      const header = JSON.parse(part(1));
      let comm = "";
      if (header.msg_type === "comm_msg" || header.msg_type === "comm_open") {
        try {
          const content = JSON.parse(part(4));
          comm = content.data?.method ?? "";
          if (content.data?.state) comm += " " + Object.keys(content.data.state).join(",").slice(0, 80);
          if (content.data?.content?.items) comm += " " + content.data.content.items.map((x) => x.type).join(",");
        } catch {}
      }
      return { type: header.msg_type, date: header.date, channel, bytes: buf.byteLength, comm };
    } catch (e) { return { error: String(e) }; }
  };
  const Native = window.WebSocket;
  class Logged extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const direct = !String(url).includes("/api/kernels/");
      this.addEventListener("message", (event) => {
        const t = now();
        log.push({ t, ev: direct ? "direct_in" : "ws_in", bytes: event.data.byteLength ?? event.data.length ?? event.data.size,
                   ...(direct ? {} : describe(event.data)) });
      });
      this.addEventListener("open", () => log.push({ t: now(), ev: direct ? "direct_open" : "ws_open", url: String(url).slice(0, 60) }));
    }
    send(data) {
      const direct = !String(this.url).includes("/api/kernels/");
      log.push({ t: now(), ev: direct ? "direct_out" : "ws_out", bytes: data.byteLength ?? data.length ?? data.size, ...(direct ? {} : describe(data)) });
      return super.send(data);
    }
  }
  window.WebSocket = Logged;
  const nativeBitmap = window.createImageBitmap;
  window.createImageBitmap = function (...args) {
    const started = now();
    log.push({ t: started, ev: "createImageBitmap start", bytes: args[0]?.size });
    return nativeBitmap.apply(this, args).then((b) => { log.push({ t: now(), ev: "createImageBitmap done" }); return b; });
  };
  const nativeDraw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    log.push({ t: now(), ev: "drawImage" });
    return nativeDraw.apply(this, args);
  };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) log.push({ t: performance.timeOrigin + e.startTime, ev: `longtask ${e.duration.toFixed(0)} ms` });
    }).observe({ type: "longtask", buffered: false });
  } catch {}
  window.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.shiftKey) log.push({ t: now(), ev: "keydown" }); }, true);
  const NativeURL = URL.createObjectURL;
  URL.createObjectURL = function (blob) {
    if (blob && blob.type === "text/javascript") log.push({ t: now(), ev: "esm_blob", bytes: blob.size });
    return NativeURL.call(this, blob);
  };
})();
