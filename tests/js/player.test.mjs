// The Player's pure logic: loop modes, prefetch order, the bounded cache, fps meter, clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  FpsMeter,
  FrameCache,
  FrameClock,
  ScreenCounter,
  framesToRequest,
  nextFrame,
  stepTarget,
  upcomingFrames,
} from "../../js/player-logic.js";

test("nextFrame follows loop, once and reflect", () => {
  assert.deepEqual(nextFrame(3, 1, 10, "loop"), { index: 4, direction: 1 });
  assert.deepEqual(nextFrame(9, 1, 10, "loop"), { index: 0, direction: 1 });
  assert.deepEqual(nextFrame(0, -1, 10, "loop"), { index: 9, direction: -1 });
  assert.equal(nextFrame(9, 1, 10, "once"), null);
  assert.equal(nextFrame(0, -1, 10, "once"), null);
  assert.deepEqual(nextFrame(9, 1, 10, "reflect"), { index: 8, direction: -1 });
  assert.deepEqual(nextFrame(0, -1, 10, "reflect"), { index: 1, direction: 1 });
  assert.equal(nextFrame(0, 1, 1, "reflect"), null);
  assert.equal(nextFrame(0, 1, 0, "loop"), null);
  // endless animations run forwards forever and stop at 0 going back
  assert.deepEqual(nextFrame(41, 1, null, "once"), { index: 42, direction: 1 });
  assert.equal(nextFrame(0, -1, null, "loop"), null);
});

test("upcomingFrames lists what playback needs, once each", () => {
  assert.deepEqual(upcomingFrames(8, 1, 10, "loop", 4), [8, 9, 0, 1]);
  assert.deepEqual(upcomingFrames(8, 1, 10, "once", 4), [8, 9]);
  assert.deepEqual(upcomingFrames(8, 1, 10, "reflect", 5), [8, 9, 7, 6, 5]);
  assert.deepEqual(upcomingFrames(1, -1, 10, "reflect", 4), [1, 0, 2, 3]);
  assert.deepEqual(upcomingFrames(0, 1, 3, "loop", 10), [0, 1, 2]);
  assert.deepEqual(upcomingFrames(5, 1, null, "loop", 3), [5, 6, 7]);
  assert.deepEqual(upcomingFrames(50, 1, 10, "loop", 3), [50], "out of range: asked for alone, the kernel says why");
});

test("stepTarget wraps in loop mode and clamps otherwise", () => {
  assert.equal(stepTarget(9, 1, 10, "loop"), 0);
  assert.equal(stepTarget(0, -1, 10, "loop"), 9);
  assert.equal(stepTarget(9, 1, 10, "once"), 9);
  assert.equal(stepTarget(0, -3, 10, "reflect"), 0);
  assert.equal(stepTarget(0, -1, null, "loop"), 0);
  assert.equal(stepTarget(7, 5, null, "loop"), 12);
});

test("FrameCache evicts least recently used entries beyond its byte bound", () => {
  const evicted = [];
  const cache = new FrameCache(10, (v) => v.length, (v) => evicted.push(v));
  cache.set(1, "aaaa");
  cache.set(2, "bbbb");
  assert.equal(cache.get(1), "aaaa"); // 1 is now the most recent
  cache.set(3, "cccc");
  assert.deepEqual(evicted, ["bbbb"]);
  assert.equal(cache.has(2), false);
  assert.equal(cache.bytes, 8);
  assert.equal(cache.hits, 1);
  assert.equal(cache.get(2), undefined);
  assert.equal(cache.misses, 1);
  cache.set(4, "dddddddddddd"); // bigger than the bound: kept alone
  assert.deepEqual([...cache.keys()], [4]);
  cache.resize(100);
  cache.set(1, "x");
  assert.equal(cache.size, 2);
  cache.clear();
  assert.equal(cache.size, 0);
  assert.equal(cache.bytes, 0);
});

test("FrameCache memory stays bounded over many frames", () => {
  const cache = new FrameCache(1000, (v) => v.byteLength);
  for (let i = 0; i < 10000; i++) cache.set(i, new Uint8Array(37));
  assert.ok(cache.bytes <= 1000);
  assert.equal(cache.size, Math.floor(1000 / 37));
});

test("FpsMeter measures paints per second over its window", () => {
  const meter = new FpsMeter(1000);
  for (let t = 0; t <= 2000; t += 1000 / 60) meter.tick(t);
  assert.ok(Math.abs(meter.rate(2000) - 60) <= 1, String(meter.rate(2000)));
  assert.equal(meter.rate(5000), 0);
  // Bursts count as they happened: 30 frames in the last second, 3 of them 1 ms apart, are 30 fps.
  const bursty = new FpsMeter(1000);
  for (let t = 0; t < 2000; t += 1000 / 30) bursty.tick(t);
  bursty.tick(1998);
  bursty.tick(1999);
  assert.ok(Math.abs(bursty.rate(2000) - 32) < 1.5, String(bursty.rate(2000)));
});

test("FrameClock paints at the target rate without bursting after a stall", () => {
  const clock = new FrameClock(30);
  clock.start(0);
  let paints = 0;
  for (let t = 0; t <= 1000; t += 1000 / 60) {
    if (clock.due(t)) {
      paints++;
      clock.advance(t);
    }
  }
  assert.ok(paints >= 29 && paints <= 31, String(paints));
  clock.advance(5000); // a long stall
  assert.ok(clock.next > 5000);
  const unthrottled = new FrameClock(0);
  assert.equal(unthrottled.due(0), true);
});

test("framesToRequest asks in batches while playing, at once when the next frame is missing", () => {
  // paused (a seek): whatever is missing, at once
  assert.deepEqual(framesToRequest([5, 6], 3, 16, false, 5), [5, 6]);
  // playing, frames on their way: wait until half the window is free
  assert.deepEqual(framesToRequest([20, 21, 22], 13, 16, true, 10), []);
  assert.deepEqual(framesToRequest([20, 21, 22, 23, 24, 25, 26, 27, 28], 8, 16, true, 10), [20, 21, 22, 23, 24, 25, 26, 27]);
  // the frame to paint next is missing (a stall, a seek while playing): at once, up to the window
  assert.deepEqual(framesToRequest([10, 11, 12], 14, 16, true, 10), [10, 11]);
  // nothing in flight: at once, however few (the end of a "once" animation)
  assert.deepEqual(framesToRequest([98, 99], 0, 32, true, 90), [98, 99]);
  // a full window asks for nothing
  assert.deepEqual(framesToRequest([40], 16, 16, true, 40), []);
  assert.deepEqual(framesToRequest([], 0, 16, true, 0), []);
});

test("ScreenCounter counts at most one displayed frame per refresh and the draws replaced before it", () => {
  const screen = new ScreenCounter(1000);
  // 60 Hz refreshes; two draws before the first refresh, one before the second, none before the third.
  screen.drew(1);
  screen.drew(5);
  assert.equal(screen.refresh(16.7), true);
  screen.drew(20);
  assert.equal(screen.refresh(33.4), true);
  assert.equal(screen.refresh(50.1), false);
  assert.deepEqual([screen.drawn, screen.displayed, screen.dropped], [3, 2, 1]);
  screen.drew(60);
  assert.equal(screen.pending, true);
  assert.equal(screen.refresh(66.8), true);
  assert.deepEqual([screen.drawn, screen.displayed, screen.dropped], [4, 3, 1]);
  assert.equal(screen.pending, false);
});

test("ScreenCounter's displayed rate follows refreshes, not draws", () => {
  const screen = new ScreenCounter(1000);
  // Draws at 120/s against 60 Hz refreshes: 60 displayed per second, 60 dropped.
  for (let i = 0; i < 240; i++) {
    screen.drew(i * (1000 / 120));
    if (i % 2 === 1) screen.refresh(i * (1000 / 120) + 1);
  }
  const now = 239 * (1000 / 120) + 1;
  assert.ok(Math.abs(screen.displayedMeter.rate(now) - 60) < 1, String(screen.displayedMeter.rate(now)));
  assert.ok(Math.abs(screen.drawnMeter.rate(now) - 120) < 1, String(screen.drawnMeter.rate(now)));
  assert.equal(screen.dropped, 120);
});
