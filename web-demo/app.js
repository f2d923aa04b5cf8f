// The page: sends what is typed to the worker (debounced), draws the answer, and offers the
// examples. No framework; the model runs in worker.js.
import { highlightRanges } from './highlight.js';

// Written for this page in the style of Stack Overflow questions (not copied from the data).
const EXAMPLES = [
  {
    title: 'Merge two dicts',
    text: "How do I merge two dicts in one expression?\n\nI have a = {'x': 1} and b = {'y': 2} and want a new dict with both keys. a.update(b) changes a in place and returns None, so print(a.update(b)) prints None. Is there a one-liner?",
  },
  {
    title: 'fetch() returns a Promise',
    text: "Why does console.log show a Promise instead of my data?\n\nconst res = fetch('/api/items');\nconsole.log(res.json());\n\nI expected an array of items. Do I need async/await or .then() here, and where?",
  },
  {
    title: 'Remove while iterating',
    text: 'ConcurrentModificationException when removing from an ArrayList in a for-each loop\n\nfor (String name : names) {\n    if (name.isEmpty()) names.remove(name);\n}\n\nWhat is the right way to remove items while iterating over a List<String>?',
  },
  {
    title: 'Await several tasks',
    text: 'How to await several tasks and get all their results?\n\nI start three Task<int> with Task.Run and want their results without blocking the UI thread of my WPF window. var a = Task.Run(() => Compute(1)); Should I use Task.WhenAll or .Result?',
  },
  {
    title: 'Read a file line by line',
    text: 'What is the simplest way to read a text file line by line and skip empty lines? The file is a few GB, so I cannot load all of it into memory at once.',
  },
];

const DEBOUNCE_MS = 150;
const $ = (id) => document.getElementById(id);
const question = $('question');

// --- the worker ---------------------------------------------------------------------------
const appStarted = performance.now();
const worker = new Worker(new URL('worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 0;
let resolveReady;
let rejectReady;
const ready = new Promise((resolve, reject) => {
  resolveReady = resolve;
  rejectReady = reject;
});
// A failed load is shown on the page; the promise is for scripts (tests, bench).
ready.catch(() => {});

worker.onmessage = ({ data }) => {
  if (data.type === 'ready') {
    // The worker's steps, for scripts/bench-web.sh, with when app.js and the worker's script
    // began on this page's clock.
    const { started_at: workerStarted, ...steps } = data.timings;
    const detail = {
      app_started_ms: appStarted,
      worker_started_ms: workerStarted - performance.timeOrigin,
      ...steps,
    };
    performance.mark('model-ready', { detail });
    resolveReady(data.manifest);
    return;
  }
  if (data.type === 'failed') {
    rejectReady(Object.assign(new Error(data.message), { code: data.code }));
    return;
  }
  const call = pending.get(data.id);
  if (!call) return;
  pending.delete(data.id);
  if (data.ok) call.resolve({ prediction: data.prediction, ms: data.ms });
  else call.reject(Object.assign(new Error(data.message), { code: data.code }));
};

// Classifies `text` in the worker: {prediction, ms} (ms: the module's classify alone), or an
// Error with the edge API's `code`.
function classify(text) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, text });
  });
}

// What the browser tests and scripts/bench-web.sh drive.
window.stacktag = { ready, classify };

// --- the page -----------------------------------------------------------------------------
let latest = 0;
let timer = null;
let shownFirst = false;

function status(text) {
  $('status').textContent = text;
}

function showError(message) {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
}

async function update() {
  const text = question.value;
  const mine = ++latest;
  if (text.trim() === '') {
    $('result').hidden = true;
    status('Type or paste a question.');
    return;
  }
  try {
    const { prediction, ms } = await classify(text);
    if (mine !== latest) return; // a newer text is on its way
    render(text, prediction);
    // The heading says the answer; the status says how it was reached, not the answer again.
    status(`Classified in your browser in ${ms.toFixed(1)} ms.`);
  } catch (e) {
    if (mine !== latest) return;
    $('result').hidden = true;
    if (e.code === 'invalid_bundle') {
      status('The model could not be loaded.');
      showError(`The model files do not check out, so nothing is classified: ${e.message}`);
    } else {
      status(`No answer: ${e.message} (\`${e.code}\`).`);
    }
  }
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(update, DEBOUNCE_MS);
}

// Why an answer is flagged unsure (the wire type's `unsure`), in the reader's words.
const UNSURE = {
  little_evidence:
    'Unsure: the text has almost nothing the model learnt from (too few known words), so this is a guess.',
  low_confidence: 'Unsure: the model gives this answer less than an even chance of being right.',
};

function render(text, prediction) {
  $('label').textContent = prediction.label;
  // The label is still shown when unsure, but as a guess, and the page says why.
  const unsure = prediction.unsure ?? null;
  $('answer-kind').textContent = unsure ? 'Best guess' : 'Answer';
  $('unsure').textContent = unsure ? (UNSURE[unsure] ?? `Unsure (${unsure}).`) : '';
  $('unsure').hidden = !unsure;
  $('result').classList.toggle('is-unsure', Boolean(unsure));
  const bars = $('bars');
  bars.replaceChildren();
  for (const { label, probability } of prediction.probabilities) {
    const percent = (probability * 100).toFixed(1);
    const row = document.createElement('div');
    row.className = `bar-row${label === prediction.label ? ' winner' : ''}`;
    row.dataset.label = label;
    row.dataset.probability = String(probability);
    row.style.display = 'contents';
    const name = element('span', 'bar-name', label);
    const track = element('div', 'bar-track');
    track.setAttribute('role', 'meter');
    track.setAttribute('aria-valuemin', '0');
    track.setAttribute('aria-valuemax', '100');
    track.setAttribute('aria-valuenow', percent);
    track.setAttribute('aria-label', `${label} probability`);
    const fill = element('div', 'bar-fill');
    fill.style.width = `${percent}%`;
    track.append(fill);
    row.append(name, track, element('span', 'bar-value', `${percent}%`));
    bars.append(row);
  }

  const box = $('highlighted');
  box.replaceChildren();
  const strongest = new Set(prediction.explanation.slice(0, 3).map((t) => t.token));
  let at = 0;
  for (const [start, end, t] of highlightRanges(text, prediction.explanation)) {
    box.append(text.slice(at, start));
    const mark = element('mark', strongest.has(t.token) ? 'strong' : '', text.slice(start, end));
    const weight = `${t.weight >= 0 ? '+' : ''}${t.weight.toFixed(2)}`;
    mark.title = `${t.token}: ${weight} towards ${prediction.label}${t.count > 1 ? ` (×${t.count})` : ''}`;
    mark.dataset.token = t.token;
    mark.dataset.weight = String(t.weight);
    mark.tabIndex = 0;
    mark.setAttribute('aria-label', `${text.slice(start, end)}, weight ${weight}`);
    box.append(mark);
    at = end;
  }
  box.append(text.slice(at));
  $('truncated').hidden = !prediction.truncated;
  $('result').hidden = false;
  if (!shownFirst) {
    shownFirst = true;
    performance.mark('first-answer');
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showModel(manifest) {
  $('model-name').textContent = manifest.model_name;
  $('model-version').textContent = manifest.model_version || 'not registered (a local build)';
  const m = manifest.metrics;
  $('model-accuracy').textContent =
    `${(m.accuracy * 100).toFixed(1)}% on ${m.examples.toLocaleString('en')} held-out questions (macro-F1 ${m.macro_f1.toFixed(3)})`;
  const created = new Date(manifest.created_at);
  $('model-created').textContent = Number.isNaN(created.getTime())
    ? manifest.created_at
    : created.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  $('model-created').title = manifest.created_at;
}

for (const example of EXAMPLES) {
  const button = element('button', '', example.title);
  button.type = 'button';
  button.addEventListener('click', () => {
    question.value = example.text;
    clearTimeout(timer);
    update();
  });
  const item = document.createElement('li');
  item.append(button);
  $('examples').append(item);
}

question.value = EXAMPLES[0].text;
question.addEventListener('input', schedule);
ready.then(
  (manifest) => {
    showModel(manifest);
    status('Model loaded.');
  },
  (e) => {
    status('The model could not be loaded.');
    showError(`The model files do not check out, so nothing is classified: ${e.message}`);
  },
);
// The first answer: sent now, answered as soon as the model is loaded.
update();

// Offline use: the service worker keeps the page, the module and the bundle. Registered once
// the model has loaded (or failed to), so that its caching download of the same files does
// not compete with the first answer.
ready
  .catch(() => {})
  .then(() => {
    if ('serviceWorker' in navigator) {
      return navigator.serviceWorker.register('sw.js');
    }
    return null;
  })
  .catch((e) => status(`Offline use is unavailable: ${e.message}`));
