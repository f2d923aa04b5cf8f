// scripts/bench-web.sh's measurements (see its header for each field); prints one JSON object.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { SITE, classifyInWorker, launch, native, quantile, serve, testQuestions, watchConsole } from './harness.mjs';

const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const round = (x, digits = 3) => Number(x.toFixed(digits));

const module = readFileSync(join(SITE, 'pkg', 'edge_classifier_web_bg.wasm'));
const server = await serve();
const browser = await launch();
try {
  const context = await browser.newContext();
  const watch = watchConsole(context);
  const page = await context.newPage();
  await page.goto(server.url);
  await page.waitForFunction(() => performance.getEntriesByName('first-answer').length > 0, null, { timeout: 60_000 });
  // Each file once (`/` is index.html).
  const fetched = [...new Set(server.served.map((p) => (p.endsWith('/') ? `${p}index.html` : p)))];
  const firstAnswerMs = await page.evaluate(() => performance.getEntriesByName('first-answer')[0].startTime);
  // Where the first answer's time went: the worker's loading steps (their own clock), and
  // when the page heard the model was ready.
  const ready = await page.evaluate(() => {
    const mark = performance.getEntriesByName('model-ready')[0];
    return { model_ready_ms: mark.startTime, ...mark.detail };
  });
  const firstAnswerParts = Object.fromEntries(Object.entries(ready).map(([k, v]) => [k, round(v, 1)]));
  const pageGz = fetched.reduce((sum, path) => sum + gz(readFileSync(join(SITE, path))), 0);

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
      first_answer_ms: round(firstAnswerMs, 1),
      first_answer_parts: firstAnswerParts,
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
  await server.close();
}
