// The Web Worker that runs the model, so the page never freezes while it loads or answers.
//
// It fetches the bundle at run time (a new model needs no rebuild of the module), checks each
// file's size and sha256 against manifest.json with WebCrypto before the module sees it, then
// loads it into the wasm module, which checks the same digests again in the core.
//
// Messages: the page sends {id, text}; the worker answers {id, ok: true, prediction, ms} or
// {id, ok: false, code, message}, with the edge API's error codes. Once loaded it posts
// {type: 'ready', manifest} or {type: 'failed', code, message}.
import init, { WebClassifier } from './pkg/edge_classifier_web.js';

const BUNDLE = new URL('bundle/', self.location.href);

let classifier = null;
const ready = load().then(
  (manifest) => {
    self.postMessage({ type: 'ready', manifest });
    return null;
  },
  (e) => {
    const failure = { code: e.code || 'invalid_bundle', message: String(e.message || e) };
    self.postMessage({ type: 'failed', ...failure });
    return failure;
  },
);

self.onmessage = async ({ data }) => {
  const failure = await ready;
  if (failure) {
    self.postMessage({ id: data.id, ok: false, ...failure });
    return;
  }
  const start = performance.now();
  try {
    const json = classifier.classify(data.text);
    const ms = performance.now() - start;
    self.postMessage({ id: data.id, ok: true, prediction: JSON.parse(json), ms });
  } catch (e) {
    self.postMessage({ id: data.id, ok: false, code: e.code || 'internal', message: String(e.message || e) });
  }
};

async function load() {
  // The module compiles while the bundle downloads.
  const [, manifestBytes] = await Promise.all([init(), fetchBytes('manifest.json')]);
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (e) {
    throw bundleError(`bundle manifest \`manifest.json\` is invalid: ${e.message}`);
  }
  const [model, tokenizer] = await Promise.all(
    ['model.onnx', 'tokenizer.json'].map((name) => fetchVerified(manifest, name)),
  );
  classifier = WebClassifier.load(manifestBytes, model, tokenizer);
  return JSON.parse(classifier.manifest());
}

async function fetchBytes(name) {
  let response;
  try {
    // Revalidated every time: registry-sync replaces the folder when a model is promoted.
    response = await fetch(new URL(name, BUNDLE), { cache: 'no-cache' });
  } catch (e) {
    throw bundleError(`bundle file \`${name}\` cannot be fetched: ${e.message}`);
  }
  if (!response.ok) {
    throw bundleError(`bundle file \`${name}\` cannot be fetched: HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

// The same checks, and the same words, as the core's `bundle::verify_file`.
async function fetchVerified(manifest, name) {
  const expected = manifest.files && manifest.files[name];
  if (!expected) throw bundleError(`bundle manifest has no digest for \`${name}\``);
  const bytes = await fetchBytes(name);
  if (bytes.length !== expected.bytes) {
    throw bundleError(
      `bundle file \`${name}\` has ${bytes.length} bytes, but its manifest says ${expected.bytes}`,
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const actual = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  if (actual !== String(expected.sha256).toLowerCase()) {
    throw bundleError(
      `bundle file \`${name}\` does not match its manifest digest (expected sha256 ${expected.sha256}, got ${actual})`,
    );
  }
  return bytes;
}

function bundleError(message) {
  return Object.assign(new Error(message), { code: 'invalid_bundle' });
}
