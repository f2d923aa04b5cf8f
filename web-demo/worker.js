// The Web Worker that runs the model, so the page never freezes while it loads or answers.
//
// It fetches the bundle at run time (a new model needs no rebuild of the module), checks who
// made it when the site trusts keys (`trusted-keys.pem` beside the page: then `model.sig`, an
// OpenSSF Model Signing signature, must verify with one of them, over exactly these files;
// docs/signing.md), hashes each file once with WebCrypto, and loads the files with their
// digests into the wasm module, whose core checks sizes and digests against manifest.json (the
// core's own sha256 compiled to wasm was 61 ms of every load).
//
// Messages: the page sends {id, text}; the worker answers {id, ok: true, prediction, ms} or
// {id, ok: false, code, message}, with the edge API's error codes. Once loaded it posts
// {type: 'ready', manifest} or {type: 'failed', code, message}.
import init, { WebClassifier } from './pkg/edge_classifier_web.js';

const BUNDLE = new URL('bundle/', self.location.href);
const TRUSTED_KEYS = new URL('trusted-keys.pem', self.location.href);
// The bundle's files besides its manifest, which the module reads.
const FILES = ['model.onnx', 'tokenizer.json'];

let classifier = null;
// How long each step of loading took (ms), posted with `ready` for scripts/bench-web.sh;
// `started_at`: when this script began, on the clock every context shares (epoch ms).
const timings = {
  started_at: performance.timeOrigin + performance.now(),
  module_ms: 0, manifest_ms: 0, files_ms: 0, sha256_ms: 0, signature_ms: 0, load_ms: 0,
};
const ready = load().then(
  (manifest) => {
    self.postMessage({ type: 'ready', manifest, timings });
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
  // The module compiles while the whole bundle downloads: the files are checked once the
  // manifest (and the module) are there, but fetched from the start.
  const since = (t) => performance.now() - t;
  let t = performance.now();
  const early = Object.fromEntries(FILES.map((name) => [name, fetchBytes(name)]));
  const keys = trustedKeys();
  // Awaited below; a failure before then (the manifest's) must not be reported twice.
  [...Object.values(early), keys].forEach((p) => p.catch(() => {}));
  const [, manifestBytes] = await Promise.all([
    init().then(() => { timings.module_ms = since(t); }),
    fetchBytes('manifest.json').then((bytes) => { timings.manifest_ms = since(t); return bytes; }),
  ]);
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (e) {
    throw bundleError(`bundle manifest \`manifest.json\` is invalid: ${e.message}`);
  }
  t = performance.now();
  const [model, tokenizer] = await Promise.all(FILES.map((name) => early[name]));
  timings.files_ms = since(t);
  t = performance.now();
  const fetched = { 'manifest.json': manifestBytes, 'model.onnx': model, 'tokenizer.json': tokenizer };
  const names = Object.keys(fetched);
  const hashes = await Promise.all(names.map((name) => sha256Hex(fetched[name])));
  const digests = Object.fromEntries(names.map((name, i) => [name, hashes[i]]));
  timings.sha256_ms = since(t);
  t = performance.now();
  await checkSignature(manifest, fetched, digests, await keys);
  timings.signature_ms = since(t);
  t = performance.now();
  classifier = WebClassifier.load(manifestBytes, model, tokenizer, digests['model.onnx'], digests['tokenizer.json']);
  timings.load_ms = since(t);
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

// --- who made it: OpenSSF Model Signing (the format of crate `model-signature`) ------------

const PAYLOAD_TYPE = 'application/vnd.in-toto+json';

// `fetched`: the bytes of each file by name; `digests`: their sha256 (hex); `keys`: the site's
// trusted keys (`trustedKeys`).
async function checkSignature(manifest, fetched, digests, keys) {
  if (keys.length === 0) return; // the site trusts no key: the digests are all it checks
  let bundle;
  try {
    bundle = JSON.parse(new TextDecoder().decode(await fetchBytes('model.sig')));
  } catch (e) {
    throw signatureError(e.code ? 'the model is not signed (no `model.sig`), and this site requires a signature' : `\`model.sig\` is not JSON: ${e.message}`);
  }
  const envelope = bundle.dsseEnvelope;
  if (bundle.mediaType !== 'application/vnd.dev.sigstore.bundle.v0.3+json' || !envelope || envelope.payloadType !== PAYLOAD_TYPE) {
    throw signatureError('`model.sig` is not a model-signing signature');
  }
  if (!Array.isArray(envelope.signatures) || envelope.signatures.length !== 1) {
    throw signatureError('`model.sig` does not hold exactly one signature');
  }
  const payload = fromBase64(envelope.payload);
  const hint = bundle.verificationMaterial?.publicKey?.hint || '';
  const candidates = keys.filter((k) => !hint || k.hint === hint);
  if (candidates.length === 0) {
    throw signatureError(`\`model.sig\` was signed with a key that is not trusted (key hint \`${hint}\`)`);
  }
  const head = new TextEncoder().encode(`DSSEv1 ${PAYLOAD_TYPE.length} ${PAYLOAD_TYPE} ${payload.length} `);
  const message = new Uint8Array(head.length + payload.length);
  message.set(head);
  message.set(payload, head.length);
  const signature = derToRaw(fromBase64(envelope.signatures[0].sig));
  let valid = false;
  for (const key of candidates) {
    if (await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key.key, signature, message)) valid = true;
  }
  if (!valid) throw signatureError('`model.sig` does not verify with a trusted key: the signature or the signed statement was altered');

  const statement = JSON.parse(new TextDecoder().decode(payload));
  if (statement._type !== 'https://in-toto.io/Statement/v1' || statement.predicateType !== 'https://model_signing/signature/v1.0') {
    throw signatureError('`model.sig` does not hold a model-signing statement');
  }
  const signed = new Map();
  for (const r of statement.predicate?.resources || []) {
    if (r.algorithm !== 'sha256') throw signatureError(`\`${r.name}\` is hashed with \`${r.algorithm}\`, not sha256`);
    signed.set(r.name, String(r.digest).toLowerCase());
  }
  const names = ['manifest.json', ...Object.keys(manifest.files || {})];
  for (const name of names) {
    if (!fetched[name]) throw signatureError(`\`${name}\` is listed but was not fetched`);
    if (!signed.has(name)) throw signatureError(`\`${name}\` is not signed`);
    if (signed.get(name) !== digests[name]) throw signatureError(`\`${name}\` differs from what was signed`);
  }
  for (const name of signed.keys()) {
    if (!names.includes(name)) throw signatureError(`\`${name}\` was signed but is not here`);
  }
}

// The keys of `trusted-keys.pem` (none when it is empty), each with its hint:
// the sha256 of its PEM form, as `model_signing` names a key.
async function trustedKeys() {
  let response;
  try {
    response = await fetch(TRUSTED_KEYS, { cache: 'no-cache' });
  } catch (e) {
    throw signatureError(`\`trusted-keys.pem\` cannot be fetched: ${e.message}`);
  }
  if (!response.ok) throw signatureError(`\`trusted-keys.pem\` cannot be fetched: HTTP ${response.status}`);
  const text = await response.text();
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) || [];
  return Promise.all(
    blocks.map(async (block) => {
      const der = fromBase64(block.replace(/-----(BEGIN|END) PUBLIC KEY-----|\s/g, ''));
      const key = await crypto.subtle.importKey('spki', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
      return { key, hint: await sha256Hex(new TextEncoder().encode(canonicalPem(der))) };
    }),
  );
}

// PEM as `openssl`/Python's `cryptography` write it: 64-column base64, LF line ends.
function canonicalPem(der) {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g).join('\n');
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`;
}

// An ECDSA signature from DER (SEQUENCE of two INTEGERs) to the raw r||s WebCrypto verifies.
function derToRaw(der) {
  const fail = () => signatureError('the signature in `model.sig` is not DER ECDSA');
  if (der[0] !== 0x30) throw fail();
  let at = 2;
  if (der[1] & 0x80) at = 2 + (der[1] & 0x7f);
  const raw = new Uint8Array(64);
  for (let i = 0; i < 2; i++) {
    if (der[at] !== 0x02) throw fail();
    let len = der[at + 1];
    let start = at + 2;
    at = start + len;
    while (len > 32 && der[start] === 0) {
      start++;
      len--;
    }
    if (len > 32) throw fail();
    raw.set(der.subarray(start, start + len), i * 32 + (32 - len));
  }
  return raw;
}

function fromBase64(text) {
  return Uint8Array.from(atob(String(text)), (c) => c.charCodeAt(0));
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function signatureError(message) {
  return bundleError(`bundle signature refused: ${message}`);
}

function bundleError(message) {
  return Object.assign(new Error(message), { code: 'invalid_bundle' });
}
