// The web demo in a real browser (Debian chromium via playwright-core), served from loopback.
// Run by scripts/test-web.sh, which builds the site and the native example first:
//   node --test web-demo/tests/
// Any console error or uncaught exception in a page, its worker or its service worker fails
// the test it happens in.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
    // Said once, in the heading: the status line does not repeat it.
    const said = await page.evaluate(() => document.body.innerText.match(/answer: java/gi)?.length ?? 0);
    assert.equal(said, 1, 'the answer is printed once');
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
      // The mark is what was typed: this text has no names or entities, so only its line
      // breaks read differently (as `.`).
      assert.equal(mark.text.toLowerCase().replace(/\n/g, '.'), mark.token);
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

test('a pasted Stack Overflow question is highlighted where its words were written', async () => {
  // HTML as Stack Overflow stores it, with a name and entities: the model reads `blank` and
  // `<`, the page marks `Java` and `&lt;` (the core's spans), never a tag.
  const html = '<p>Why does Java throw here?</p>\n<pre><code>List&lt;String&gt; names = null;\nSystem.out.println(names.size());\n</code></pre>';
  const [expected] = native([html]).predictions;
  await withPage(server.url, async (page) => {
    await page.waitForFunction(() => !document.getElementById('result').hidden, null, { timeout: 30_000 });
    await page.getByLabel('Your question').fill(html);
    await page.waitForFunction((text) => document.getElementById('highlighted').textContent === text, html);
    const view = await shown(page);
    assert.equal(view.label, expected.label);
    assert.ok(view.marks.length >= 3, `only ${view.marks.length} highlights`);
    for (const mark of view.marks) {
      const token = expected.explanation.find((t) => t.token === mark.token);
      assert.ok(token, `\`${mark.token}\` is not in the explanation`);
      assert.ok(!/<\/?(p|pre|code)>/.test(mark.text), `a tag is marked: ${JSON.stringify(mark.text)}`);
      // The marked text is one of the places the core gives for that token.
      const bytes = new TextEncoder().encode(html);
      const written = token.spans.map(([s, e]) => new TextDecoder().decode(bytes.slice(s, e)));
      assert.ok(written.includes(mark.text), `${JSON.stringify(mark.text)} is not at a span of \`${mark.token}\``);
    }
  });
});

test('a text the model knows nothing in is shown as a guess, with why', async () => {
  // The case: 60 KB of one letter was answered "csharp" as if it were an answer.
  const nothing = 'x'.repeat(60_000);
  const [expected] = native([nothing]).predictions;
  assert.ok(expected.unsure, `the core flags it unsure (got ${JSON.stringify(expected.unsure)})`);
  await withPage(server.url, async (page) => {
    await page.waitForFunction(() => !document.getElementById('result').hidden, null, { timeout: 30_000 });
    const box = page.getByLabel('Your question');
    await box.fill(nothing);
    await page.waitForFunction(() => document.getElementById('answer-kind').textContent === 'Best guess', null,
      { timeout: 30_000 });
    assert.equal(await page.locator('#label').textContent(), expected.label);
    const why = await page.locator('#unsure').textContent();
    assert.match(why, expected.unsure === 'little_evidence' ? /too few known words/ : /less than an even chance/);
    assert.equal(await page.locator('#result.is-unsure').count(), 1);
    // A sure answer clears it.
    await box.fill(JAVA);
    await page.waitForFunction(() => document.getElementById('answer-kind').textContent === 'Answer'
      && document.getElementById('label').textContent === 'java', null, { timeout: 30_000 });
    assert.ok(await page.locator('#unsure').isHidden());
    assert.equal(await page.locator('#result.is-unsure').count(), 0);
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
      assert.equal(answer.prediction.unsure, expected[i].unsure, `question ${i}: unsure`);
      answer.prediction.probabilities.forEach((p, j) => {
        maxDiff = Math.max(maxDiff, Math.abs(p.probability - expected[i].probabilities[j].probability));
      });
      // The whole wire answer agrees: explanation tokens, truncation, model.
      assert.deepEqual(answer.prediction.explanation.map((t) => t.token), expected[i].explanation.map((t) => t.token), `question ${i}: explanation`);
      // And where they are in the text: the same byte spans.
      assert.deepEqual(answer.prediction.explanation.map((t) => t.spans), expected[i].explanation.map((t) => t.spans), `question ${i}: spans`);
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

test('the module itself refuses a tampered model, hashing it or given its digest', async () => {
  await withPage(server.url, async (page) => {
    const result = await page.evaluate(async () => {
      const { default: init, WebClassifier } = await import('./pkg/edge_classifier_web.js');
      await init();
      const get = async (name) => new Uint8Array(await (await fetch(`bundle/${name}`)).arrayBuffer());
      const sha256 = async (bytes) =>
        Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
      const [manifest, model, tokenizer] = await Promise.all(['manifest.json', 'model.onnx', 'tokenizer.json'].map(get));
      const tokenizerSha = await sha256(tokenizer);
      const labels = [];
      for (const digests of [[], [await sha256(model), tokenizerSha]]) {
        const good = WebClassifier.load(manifest, model, tokenizer, ...digests);
        labels.push(JSON.parse(good.classify('console.log(document.getElementById("x"))')).label);
      }
      model[100] ^= 0x01;
      const refusals = [];
      // The core hashes; or the host hashed the tampered bytes, as the worker would.
      for (const digests of [[], [await sha256(model), tokenizerSha]]) {
        try {
          WebClassifier.load(manifest, model, tokenizer, ...digests);
          refusals.push({ loaded: true });
        } catch (e) {
          refusals.push({ code: e.code, message: e.message });
        }
      }
      return { labels, refusals };
    });
    assert.deepEqual(result.labels, ['javascript', 'javascript']);
    for (const refusal of result.refusals) {
      assert.equal(refusal.code, 'invalid_bundle');
      assert.match(refusal.message, /^bundle file `model\.onnx` does not match its manifest digest/);
    }
  });
});

// A P-256 key pair as PEM (PKCS#8 private, SPKI public: what `openssl` writes).
function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    private: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    public: publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

// model.sig for the site's bundle (the manifest and the files it lists), signed by PyPI
// model-signing's own CLI: the page must accept what the format's reference writes.
function referenceSignature(privatePem) {
  const work = mkdtempSync(join(tmpdir(), 'web-sign-'));
  try {
    const dir = join(work, 'bundle');
    mkdirSync(dir);
    for (const name of ['manifest.json', ...Object.keys(manifest.files)]) {
      copyFileSync(join(SITE, 'bundle', name), join(dir, name));
    }
    writeFileSync(join(work, 'key.pem'), privatePem);
    const cli = process.env.STACKTAG_MODEL_SIGNING;
    assert.ok(cli, 'STACKTAG_MODEL_SIGNING names model_signing (scripts/test-web.sh sets it)');
    execFileSync(cli, ['sign', 'key', '--private_key', join(work, 'key.pem'), '--signature', join(work, 'model.sig'), dir]);
    return readFileSync(join(work, 'model.sig'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// The page's load outcome on a site with `overrides`: 'ready' (and an answer), or the load
// error's message. A refused load may leave a 404 in the console (a missing `model.sig`), so
// the console is checked only when the load succeeded.
async function loadOutcome(overrides) {
  const site = await serve(SITE, overrides);
  const { context, page, watch } = await openPage(browser, site.url);
  try {
    const outcome = await page.evaluate(() => window.stacktag.ready.then(() => 'ready', (e) => e.message));
    if (outcome === 'ready') {
      const [answer] = await classifyInWorker(page, [JAVA]);
      assert.equal(answer.ok, true, JSON.stringify(answer));
      watch.check();
    } else {
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 10_000 });
      assert.ok((await alert.textContent()).endsWith(outcome), 'the page shows the reason');
    }
    return outcome;
  } finally {
    await context.close();
    await site.close();
  }
}

test('with trusted keys, the page loads only a bundle a trusted key signed, checked with WebCrypto', async () => {
  const ours = keyPair();
  const stranger = keyPair();
  const sig = referenceSignature(ours.private);
  // Signed by the trusted key (model_signing's own signature): loads and answers.
  assert.equal(await loadOutcome({ '/trusted-keys.pem': ours.public, '/bundle/model.sig': sig }), 'ready');
  // Rotation: two trusted keys, the signer's second.
  assert.equal(await loadOutcome({ '/trusted-keys.pem': stranger.public + ours.public, '/bundle/model.sig': sig }), 'ready');
  // Signed by someone the site does not trust.
  assert.match(
    await loadOutcome({ '/trusted-keys.pem': stranger.public, '/bundle/model.sig': sig }),
    /bundle signature refused: `model\.sig` was signed with a key that is not trusted/,
  );
  // Keys, but no signature.
  assert.match(await loadOutcome({ '/trusted-keys.pem': ours.public }), /bundle signature refused: the model is not signed/);
  // A manifest changed after signing: its digests still match the files, only the signature
  // catches it.
  const edited = JSON.parse(readFileSync(join(SITE, 'bundle', 'manifest.json'), 'utf8'));
  edited.data_snapshot = 'forged';
  assert.match(
    await loadOutcome({ '/trusted-keys.pem': ours.public, '/bundle/model.sig': sig, '/bundle/manifest.json': JSON.stringify(edited) }),
    /bundle signature refused: `manifest\.json` differs from what was signed/,
  );
  // A signature byte flipped.
  const flipped = JSON.parse(sig.toString());
  const raw = Buffer.from(flipped.dsseEnvelope.signatures[0].sig, 'base64');
  raw[raw.length - 1] ^= 0x01;
  flipped.dsseEnvelope.signatures[0].sig = raw.toString('base64');
  assert.match(
    await loadOutcome({ '/trusted-keys.pem': ours.public, '/bundle/model.sig': JSON.stringify(flipped) }),
    /bundle signature refused: `model\.sig` does not verify/,
  );
});
