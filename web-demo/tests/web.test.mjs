// The web demo in a real browser (Debian chromium via playwright-core), served from loopback.
// Run by scripts/test-web.sh, which builds the site and the native example first:
//   node --test web-demo/tests/
// Any console error or uncaught exception in a page, its worker or its service worker fails
// the test it happens in.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { SITE, classifyInWorker, launch, native, openPage, serve, testQuestions } from './harness.mjs';

const TOLERANCE = 1e-6;
const SCREENSHOT = process.env.STACKTAG_WEB_SCREENSHOT || join(SITE, '..', 'web-demo-screenshot.png');
const manifest = JSON.parse(readFileSync(join(SITE, 'bundle', 'manifest.json'), 'utf8'));

let browser;
let server;
before(async () => {
  browser = await launch();
  server = await serve();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

// Opens the page, runs `body`, then fails on anything the browser reported.
async function withPage(url, body, options) {
  const { context, page, watch } = await openPage(browser, url, options);
  try {
    await body(page, context);
    watch.check();
  } finally {
    await context.close();
  }
}

// The page's current answer, as drawn.
async function shown(page) {
  return page.evaluate(() => ({
    label: document.getElementById('label').textContent,
    bars: [...document.querySelectorAll('.bar-row')].map((row) => ({
      label: row.dataset.label,
      probability: Number(row.dataset.probability),
      width: row.querySelector('.bar-fill').style.width,
      value: row.querySelector('.bar-value').textContent,
    })),
    marks: [...document.querySelectorAll('#highlighted mark')].map((m) => ({
      text: m.textContent,
      token: m.dataset.token,
      title: m.title,
    })),
    highlighted: document.getElementById('highlighted').textContent,
  }));
}

async function waitForAnswer(page, label) {
  await page.waitForFunction(
    (label) => {
      const result = document.getElementById('result');
      return !result.hidden && document.getElementById('label').textContent === label;
    },
    label,
    { timeout: 30_000 },
  );
}

function assertSameAnswer(web, nat, what) {
  assert.equal(web.label, nat.label, `${what}: label`);
  assert.deepEqual(web.probabilities.map((p) => p.label), nat.probabilities.map((p) => p.label), `${what}: label order`);
  web.probabilities.forEach((p, i) => {
    const d = Math.abs(p.probability - nat.probabilities[i].probability);
    assert.ok(d <= TOLERANCE, `${what}: p(${p.label}) differs by ${d}`);
  });
}

const JAVA = 'NullPointerException when I call a method on my list\n\npublic static void main(String[] args) {\n    List<String> names = null;\n    System.out.println(names.size());\n}';

test('typing a question shows its label, a bar per language and the deciding words', async () => {
  const [expected] = native([JAVA]).predictions;
  await withPage(server.url, async (page) => {
    // The page opens on an example and answers it without any input.
    await page.waitForFunction(() => !document.getElementById('result').hidden, null, { timeout: 30_000 });
    const box = page.getByLabel('Your question');
    await box.fill('');
    await box.pressSequentially(JAVA);
    await waitForAnswer(page, expected.label);
    // Debounced: wait until the answer is for the whole text.
    await page.waitForFunction((text) => document.getElementById('highlighted').textContent === text, JAVA);
    const view = await shown(page);
    assert.equal(view.label, 'java');
    assertSameAnswer({ label: view.label, probabilities: view.bars }, expected, 'the page');
    assert.deepEqual(view.bars.map((b) => b.label), manifest.labels);
    for (const bar of view.bars) {
      assert.ok(Math.abs(parseFloat(bar.width) - bar.probability * 100) <= 0.05, `bar width ${bar.width}`);
      assert.equal(bar.value, `${(bar.probability * 100).toFixed(1)}%`);
    }
    // The highlights are the explanation's tokens, each with its weight on hover.
    assert.ok(view.marks.length >= 3, `only ${view.marks.length} highlights`);
    const weights = new Map(expected.explanation.map((t) => [t.token, t.weight]));
    for (const mark of view.marks) {
      assert.ok(weights.has(mark.token), `\`${mark.token}\` is not in the explanation`);
      assert.equal(mark.text.toLowerCase(), mark.token);
      assert.match(mark.title, new RegExp(`^\\S+: \\+${weights.get(mark.token).toFixed(2)} towards java`));
    }
    assert.ok(view.marks.some((m) => m.token === 'system' || m.token === 'println' || m.token === 'string'),
      `expected a Java word among ${view.marks.map((m) => m.token)}`);
    // The model panel: from the manifest.
    assert.equal(await page.locator('#model-name').textContent(), manifest.model_name);
    assert.match(await page.locator('#model-accuracy').textContent(), new RegExp(`^${(manifest.metrics.accuracy * 100).toFixed(1)}%`));
    assert.equal(await page.locator('#model-created').textContent(), `${manifest.created_at.slice(0, 16).replace('T', ' ')} UTC`);
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });
});

test('the examples work from the keyboard, and the page fits a phone', async () => {
  await withPage(
    server.url,
    async (page) => {
      await page.waitForFunction(() => !document.getElementById('result').hidden, null, { timeout: 30_000 });
      const button = page.getByRole('button', { name: 'Await several tasks' });
      await button.focus();
      await page.keyboard.press('Enter');
      const text = await page.getByLabel('Your question').inputValue();
      assert.match(text, /Task\.WhenAll/);
      const [expected] = native([text]).predictions;
      await waitForAnswer(page, expected.label);
      assert.equal(expected.label, 'csharp');
      await page.waitForFunction((text) => document.getElementById('highlighted').textContent === text, text);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a phone's screen`);
      // Every form control has a label.
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('textarea, input, select')].filter((e) => e.labels.length === 0).length);
      assert.equal(unlabelled, 0);
    },
    { viewport: { width: 360, height: 740 } },
  );
});

test('the worker answers 500 real test questions exactly as the native core does', async (t) => {
  const questions = testQuestions(500);
  assert.equal(questions.length, 500);
  assert.equal(new Set(questions.map((q) => q.label)).size, manifest.labels.length);
  const texts = questions.map((q) => q.text);
  const expected = native(texts).predictions;
  await withPage(server.url, async (page) => {
    const answers = await classifyInWorker(page, texts);
    let maxDiff = 0;
    answers.forEach((answer, i) => {
      assert.ok(answer.ok, `question ${i}: ${answer.message}`);
      assertSameAnswer(answer.prediction, expected[i], `question ${i}`);
      answer.prediction.probabilities.forEach((p, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(p.probability - expected[i].probabilities[j].probability));
      });
      // The whole wire answer agrees: explanation tokens, truncation, model.
      assert.deepEqual(answer.prediction.explanation.map((t) => t.token), expected[i].explanation.map((t) => t.token), `question ${i}: explanation`);
      answer.prediction.explanation.forEach((t, j) =>
        assert.ok(Math.abs(t.weight - expected[i].explanation[j].weight) <= 1e-5, `question ${i}: weight of \`${t.token}\``));
      assert.equal(answer.prediction.truncated, expected[i].truncated);
      assert.deepEqual(answer.prediction.model, expected[i].model);
    });
    t.diagnostic(`max |Δp| ${maxDiff}`);
  });
});

test('bad input gets the edge API error codes', async () => {
  const texts = [' \n\t ', 'x'.repeat(70_000)];
  const expected = native(texts).predictions;
  assert.deepEqual(expected.map((e) => e.error?.code), ['empty_text', 'body_too_large']);
  await withPage(server.url, async (page) => {
    const answers = await classifyInWorker(page, texts);
    answers.forEach((answer, i) => {
      assert.equal(answer.ok, false);
      assert.equal(answer.code, expected[i].error.code);
      assert.equal(answer.message, expected[i].error.message);
    });
  });
});

test('offline: after one visit, a reload with the server gone still classifies', async () => {
  const own = await serve();
  const text = 'how do i reverse a list in place? my_list[::-1] returns a copy and my_list.reverse() returns None';
  const [expected] = native([text]).predictions;
  await withPage(own.url, async (page, context) => {
    await page.evaluate(async () => {
      await window.stacktag.ready;
      await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) {
        await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
      }
    });
    await own.close();
    await context.setOffline(true);
    await page.reload();
    await page.waitForFunction(() => !document.getElementById('result').hidden, null, { timeout: 30_000 });
    const [answer] = await classifyInWorker(page, [text]);
    assert.ok(answer.ok, answer.message);
    assertSameAnswer(answer.prediction, expected, 'offline');
  });
});

test('a tampered model file gives a clear message, not an answer', async () => {
  const model = readFileSync(join(SITE, 'bundle', 'model.onnx'));
  const tampered = Buffer.from(model);
  tampered[tampered.length >> 1] ^= 0x01;
  const bad = await serve(SITE, { '/bundle/model.onnx': tampered });
  try {
    await withPage(bad.url, async (page) => {
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 30_000 });
      const message = await alert.textContent();
      assert.match(message, /bundle file `model\.onnx` does not match its manifest digest/);
      assert.match(message, new RegExp(`expected sha256 ${manifest.files['model.onnx'].sha256}`));
      assert.equal(await page.locator('#result').isHidden(), true);
      const [answer] = await classifyInWorker(page, ['public static void main']);
      assert.equal(answer.ok, false);
      assert.equal(answer.code, 'invalid_bundle');
    });
  } finally {
    await bad.close();
  }
});

test('the module itself refuses a tampered model (the core checks the digests again)', async () => {
  await withPage(server.url, async (page) => {
    const result = await page.evaluate(async () => {
      const { default: init, WebClassifier } = await import('./pkg/edge_classifier_web.js');
      await init();
      const get = async (name) => new Uint8Array(await (await fetch(`bundle/${name}`)).arrayBuffer());
      const [manifest, model, tokenizer] = await Promise.all(['manifest.json', 'model.onnx', 'tokenizer.json'].map(get));
      const good = WebClassifier.load(manifest, model, tokenizer);
      const label = JSON.parse(good.classify('console.log(document.getElementById("x"))')).label;
      model[100] ^= 0x01;
      try {
        WebClassifier.load(manifest, model, tokenizer);
        return { label, loaded: true };
      } catch (e) {
        return { label, code: e.code, message: e.message };
      }
    });
    assert.equal(result.label, 'javascript');
    assert.equal(result.code, 'invalid_bundle');
    assert.match(result.message, /^bundle file `model\.onnx` does not match its manifest digest/);
  });
});
