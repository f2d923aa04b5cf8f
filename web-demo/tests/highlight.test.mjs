// The page's highlighting, in node (no browser needed): where the explanation's tokens are
// found again in the text as typed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { highlightRanges } from '../highlight.js';

const marked = (text, explanation) => highlightRanges(text, explanation).map(([s, e]) => text.slice(s, e));
const t = (token, count = 1, weight = 1) => ({ token, count, weight });

test('whole words first, case-insensitively, at most `count` times', () => {
  assert.deepEqual(marked('Print(x) then print again; print!', [t('print', 2)]), ['Print', 'print']);
});

test('a longer token is placed before a shorter one inside it', () => {
  assert.deepEqual(marked('foreach (var x in xs) for', [t('for'), t('foreach')]), ['foreach', 'for']);
});

test('a subword token is found inside a word when no whole word matches', () => {
  assert.deepEqual(marked('f.readline()', [t('line')]), ['line']);
});

test('a one-letter token only as a whole word; negative weights are not marked', () => {
  assert.deepEqual(marked('at t x', [t('t'), t('x', 1, -0.5)]), ['t']);
});

test('punctuation tokens match anywhere', () => {
  assert.deepEqual(marked("open('a.txt')", [t("')")]), ["')"]);
});

test('offsets stay right when lower-casing changes a length', () => {
  const text = 'İstanbul print';
  assert.deepEqual(marked(text, [t('print')]), ['print']);
});
