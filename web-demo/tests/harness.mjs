// What the browser tests (web.test.mjs) and the bench (bench.mjs) share: a static server on
// loopback, Debian chromium through playwright-core, a console watch, the real test questions
// and the native core's answers.
//
// Environment (scripts/test-web.sh and scripts/bench-web.sh set it):
//   STACKTAG_WEB_SITE        the folder scripts/build-web.sh wrote
//   STACKTAG_NATIVE_CLASSIFY the native `classify_json` example binary (edge-classifier/examples)
//   STACKTAG_SHARED_DATA     the folder that holds stackoverflow16k/
//   STACKTAG_CHROMIUM        the browser (default /usr/bin/chromium)
//   STACKTAG_MODEL_SIGNING   PyPI model-signing's CLI (the venv's), which signs bundles for the
//                            signature tests as the format's reference implementation
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`\`${name}\` is not set: run this through scripts/test-web.sh or scripts/bench-web.sh`);
  return value;
}

export const SITE = need('STACKTAG_WEB_SITE');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

// Serves `root` on 127.0.0.1 (a secure context, so WebCrypto and service workers work).
// `overrides` maps a URL path to the bytes served instead of the file (a tampered model).
// `served` lists every path answered, in order, for the bench's page size.
export async function serve(root = SITE, overrides = {}) {
  const served = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = overrides[path] ?? (await readFile(file));
      served.push(path);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] || 'application/octet-stream',
        'cache-control': 'no-cache',
      });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    served,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}

// Debian chromium with the flags docs/toolchain.md gives for running as root.
export const CHROMIUM = process.env.STACKTAG_CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// playwright-core gives each launch a fresh temporary --user-data-dir.
export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

// Records every console error, uncaught exception and crash from the context's pages, workers
// and service workers. `check()` throws if there was any.
export function watchConsole(context) {
  const problems = [];
  const onConsole = (where) => (message) => {
    if (message.type() === 'error') problems.push(`${where} console error: ${message.text()}`);
  };
  context.on('console', onConsole('page'));
  context.on('weberror', (e) => problems.push(`uncaught exception: ${e.error().message}`));
  context.on('serviceworker', (w) => w.on('console', onConsole('service worker')));
  const watchWorker = (w) => w.on('console', onConsole('worker'));
  const watchPage = (page) => {
    page.on('pageerror', (e) => problems.push(`page uncaught exception: ${e.message}`));
    page.on('crash', () => problems.push('page crashed'));
    page.on('worker', watchWorker);
    page.workers().forEach(watchWorker);
  };
  // Pages open already too: the bench connects to a page that loaded before it.
  context.pages().forEach(watchPage);
  context.on('page', watchPage);
  return {
    problems,
    check() {
      if (problems.length) throw new Error(`the browser reported:\n${[...new Set(problems)].join('\n')}`);
    },
  };
}

// Every `step`-th question of stackoverflow16k/test.csv.gz (sorted by label, so every label
// is in), read and decompressed here: the data never enters the repository.
export function testQuestions(count = 500) {
  const path = join(need('STACKTAG_SHARED_DATA'), 'stackoverflow16k', 'test.csv.gz');
  const rows = parseCsv(gunzipSync(readFileSync(path)).toString('utf8'));
  const header = rows.shift();
  const [label, text] = [header.indexOf('label'), header.indexOf('text')];
  const all = rows.filter((r) => r.length === header.length).map((r) => ({ label: r[label], text: r[text] }));
  const step = Math.max(1, Math.floor(all.length / count));
  return all.filter((_, i) => i % step === 0).slice(0, count);
}

// RFC 4180: quoted fields with doubled quotes and line breaks inside.
export function parseCsv(data) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < data.length; i++) {
    const c = data[i];
    if (quoted) {
      if (c === '"' && data[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && data[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

// The native core's answers (`service::handle`, as the edge answers) and per-text times.
export function native(texts) {
  const binary = need('STACKTAG_NATIVE_CLASSIFY');
  const run = spawnSync(binary, [join(SITE, 'bundle')], {
    input: JSON.stringify(texts),
    maxBuffer: 1 << 30,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`\`${binary}\` failed: ${run.stderr || run.error}`);
  return JSON.parse(run.stdout);
}

// A fresh context and page on `url`, with the model loaded.
export async function openPage(browser, url, { viewport = { width: 900, height: 1000 } } = {}) {
  const context = await browser.newContext({ viewport });
  const watch = watchConsole(context);
  const page = await context.newPage();
  await page.goto(url);
  return { context, page, watch };
}

// Classifies every text in the page's worker, in order, one at a time (as a person types):
// [{ok, prediction, ms} | {ok: false, code, message}].
export function classifyInWorker(page, texts) {
  return page.evaluate(async (texts) => {
    // A bundle that failed to load still answers each text, with its error.
    await window.stacktag.ready.catch(() => {});
    const out = [];
    for (const text of texts) {
      try {
        out.push({ ok: true, ...(await window.stacktag.classify(text)) });
      } catch (e) {
        out.push({ ok: false, code: e.code, message: e.message });
      }
    }
    return out;
  }, texts);
}

export function quantile(values, q) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
