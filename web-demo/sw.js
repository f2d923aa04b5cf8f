// Offline use: keeps the page, the module and the bundle in a cache, and answers from it when
// the network does not. Network first, so a promoted model (registry-sync replaces bundle/)
// is picked up whenever the site can be reached.
const CACHE = 'stacktag-__BUILD__';
const FILES = [
  './',
  'index.html',
  'style.css',
  'app.js',
  'highlight.js',
  'worker.js',
  'trusted-keys.pem',
  'pkg/edge_classifier_web.js',
  'pkg/edge_classifier_web_bg.wasm',
  'bundle/manifest.json',
  'bundle/model.onnx',
  'bundle/tokenizer.json',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(FILES.map((f) => new Request(f, { cache: 'no-cache' }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
        }
        return response;
      })
      .catch(() =>
        caches
          .match(request, { ignoreSearch: true })
          .then((hit) => hit || Response.error()),
      ),
  );
});
