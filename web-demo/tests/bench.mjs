// scripts/bench-web.sh's measurements (see its header for each field); prints one JSON object.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import {
  CHROMIUM,
  CHROMIUM_FLAGS,
  SITE,
  classifyInWorker,
  launch,
  native,
  quantile,
  serve,
  testQuestions,
  watchConsole,
} from './harness.mjs';

const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const round = (x, digits = 3) => Number(x.toFixed(digits));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Where the browser starts: it waits there until it is idle, then goes to the page.
const START = '/bench-start.html';
const SETTLE_S = 3;
const START_PAGE = `<!doctype html><meta http-equiv="refresh" content="${SETTLE_S};url=/"><title>waiting</title>`;

function firstAnswerDrawn(page) {
  return page.waitForFunction(() => performance.getEntriesByName('first-answer').length > 0, null, { timeout: 60_000 });
}

// The page's own marks: when the first answer was drawn and where its time went (the worker's
// loading steps on their own clock, and when the page heard the model was ready).
function marks(page) {
  return page.evaluate(() => {
    const ready = performance.getEntriesByName('model-ready')[0];
    return {
      first_answer_ms: performance.getEntriesByName('first-answer')[0].startTime,
      parts: { model_ready_ms: ready.startTime, ...ready.detail },
    };
  });
}

// The first answer as a person gets it: a browser that is already running and idle, a fresh
// profile (nothing cached, no service worker), and nothing attached to it while the page loads.
// Playwright pauses every new page and worker until its debugger has attached, and in a
// browser it has just launched the first navigation also races the browser's own start-up;
// on 2 cores that doubled the figure (docs/benchmarks.md#web-unattached). So chromium is
// started here with a start page that sends it to the site after SETTLE_S, and Playwright
// connects only once the page has loaded its model and registered its service worker (after
// the first answer). Returns the connected browser and the page, for the rest of the bench.
async function openUnattached(server) {
  const profile = mkdtempSync(join(tmpdir(), 'stacktag-bench-'));
  const child = spawn(
    CHROMIUM,
    [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, '--remote-debugging-port=0', `${server.url}${START.slice(1)}`],
    // Its own process group, so that closing it stops its helper processes too.
    { stdio: 'ignore', detached: true },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const close = async () => {
    if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    await exited;
    // A helper may still be writing into the profile as it goes.
    rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  };
  try {
    const deadline = Date.now() + 60_000;
    while (!server.served.includes('/sw.js')) {
      if (child.exitCode !== null) throw new Error(`chromium exited (${child.exitCode}) before the page loaded`);
      if (Date.now() > deadline) throw new Error('the page did not register its service worker within 60 s');
      await sleep(50);
    }
    // The first answer is drawn right after the model is ready, beside the registration.
    await sleep(1000);
    const [port] = readFileSync(join(profile, 'DevToolsActivePort'), 'utf8').split('\n');
    const browser = await chromium.connectOverCDP(`http://127.0.0.1:${port}`);
    const page = browser.contexts().flatMap((c) => c.pages()).find((p) => p.url() === server.url);
    if (!page) throw new Error(`no page at ${server.url} in the browser`);
    const failed = await page.evaluate(() => window.stacktag.ready.then(() => null, (e) => e.message));
    if (failed) throw new Error(`the page could not load the model: ${failed}`);
    await firstAnswerDrawn(page);
    return { browser, page, close };
  } catch (e) {
    await close();
    throw e;
  }
}

// The first answer as this bench measured it until it measured an unattached browser (kept
// for comparison): a page that Playwright opens in a browser it has just launched.
async function firstAnswerAutomated(server) {
  const browser = await launch();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(server.url);
    await firstAnswerDrawn(page);
    return (await marks(page)).first_answer_ms;
  } finally {
    await browser.close();
  }
}

const module = readFileSync(join(SITE, 'pkg', 'edge_classifier_web_bg.wasm'));
const server = await serve(SITE, { [START]: Buffer.from(START_PAGE) });
const { browser, page, close } = await openUnattached(server);
try {
  const watch = watchConsole(page.context());
  // Each file once (`/` is index.html), without the start page and the service worker's
  // script (registered once the model has loaded, after the first answer is on its way).
  const fetched = [
    ...new Set(
      server.served.filter((p) => p !== START && p !== '/sw.js').map((p) => (p.endsWith('/') ? `${p}index.html` : p)),
    ),
  ];
  const pageGz = fetched.reduce((sum, path) => sum + gz(readFileSync(join(SITE, path))), 0);
  const firstAnswer = await marks(page);
  const firstAnswerParts = Object.fromEntries(Object.entries(firstAnswer.parts).map(([k, v]) => [k, round(v, 1)]));

  const texts = testQuestions(500).map((q) => q.text);
  const web = await classifyInWorker(page, texts);
  const nat = native(texts);
  watch.check();
  let maxDiff = 0;
  let mismatches = 0;
  web.forEach((answer, i) => {
    if (!answer.ok) throw new Error(`question ${i}: ${answer.message}`);
    const expected = nat.predictions[i];
    if (answer.prediction.label !== expected.label) mismatches += 1;
    answer.prediction.probabilities.forEach((p, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(p.probability - expected.probabilities[j].probability));
    });
  });
  const webMs = web.map((a) => a.ms);
  const p50 = quantile(webMs, 0.5);
  const nativeP50 = quantile(nat.classify_ms, 0.5);
  console.log(
    JSON.stringify({
      module_bytes: module.length,
      module_gz_bytes: gz(module),
      page_gz_bytes: pageGz,
      page_files: fetched,
      first_answer_ms: round(firstAnswer.first_answer_ms, 1),
      first_answer_parts: firstAnswerParts,
      first_answer_automated_ms: round(await firstAnswerAutomated(server), 1),
      classify_p50_ms: round(p50),
      classify_p99_ms: round(quantile(webMs, 0.99)),
      native_p50_ms: round(nativeP50, 4),
      ratio: round(p50 / nativeP50, 2),
      questions: texts.length,
      parity_max_abs_diff: maxDiff,
      parity_label_mismatches: mismatches,
    }),
  );
} finally {
  await browser.close();
  await close();
  await server.close();
}
