// The page's highlighting, in node (no browser needed): the explanation's byte spans as string
// ranges of the text as typed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { highlightRanges } from '../highlight.js';

const marked = (text, explanation) => highlightRanges(text, explanation).map(([s, e]) => text.slice(s, e));
const t = (token, spans, weight = 1) => ({ token, count: spans.length, weight, spans });

test('spans mark what the person wrote, in text order', () => {
  const text = 'Why does Java throw? &lt;T&gt; in Java';
  assert.deepEqual(marked(text, [t('blank', [[9, 13], [34, 38]]), t('<', [[21, 25]])]), ['Java', '&lt;', 'Java']);
});

test('byte offsets become string indices past multi-byte and astral characters', () => {
  // 'é' is 2 bytes and 1 index, '€' 3 and 1, '😀' 4 and 2.
  const text = 'é€😀 print';
  assert.deepEqual(marked(text, [t('print', [[10, 15]])]), ['print']);
  assert.deepEqual(marked(text, [t('é', [[0, 2]])]), ['é']);
});

test('the stronger token keeps a shared place; negative weights are not marked', () => {
  const text = 'Java x';
  assert.deepEqual(marked(text, [t('bl', [[0, 4]], 2), t('ank', [[0, 4]], 1), t('x', [[5, 6]], -0.5)]), ['Java']);
});

test('offsets inside a character, past the end or without spans are skipped', () => {
  const text = 'é a';
  assert.deepEqual(marked(text, [t('x', [[1, 3], [3, 99]]), { token: 'a', count: 1, weight: 1 }]), []);
});
