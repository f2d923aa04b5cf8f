// Where the deciding tokens are in the text: the explanation lists tokens (lower case, as the
// tokenizer wrote them) and how often each occurs, not their offsets, so they are found again
// in the text as typed, case-insensitively, whole words first.

const WORD = /[\p{L}\p{N}_]/u;

// Returns non-overlapping [start, end, contribution] ranges in `text`, in text order. Each
// token is marked at most `count` times; longer tokens are placed first, so `foreach` is not
// taken apart by a `for` found inside it.
export function highlightRanges(text, explanation) {
  const lower = lowerSameLength(text);
  const taken = new Uint8Array(text.length);
  const ranges = [];
  const tokens = explanation
    .filter((t) => t.weight > 0 && t.token.trim() !== '')
    .sort((a, b) => b.token.length - a.token.length);
  for (const t of tokens) {
    const token = t.token.toLowerCase();
    let left = t.count;
    // Whole-word matches first; then, for words of two letters or more, inside longer words
    // (a BPE token can be part of a word: `readline` is `read` + `line`).
    for (const wholeWord of [true, false]) {
      if (!wholeWord && (token.length < 2 || !WORD.test(token))) break;
      for (let at = lower.indexOf(token); at !== -1 && left > 0; at = lower.indexOf(token, at + 1)) {
        const end = at + token.length;
        if (wholeWord && !atBoundary(lower, at, end, token)) continue;
        if (taken.subarray(at, end).some((x) => x)) continue;
        taken.fill(1, at, end);
        ranges.push([at, end, t]);
        left -= 1;
      }
    }
  }
  return ranges.sort((a, b) => a[0] - b[0]);
}

function atBoundary(text, start, end, token) {
  const before = start > 0 ? text[start - 1] : '';
  const after = end < text.length ? text[end] : '';
  const okBefore = !WORD.test(token[0]) || !before || !WORD.test(before);
  const okAfter = !WORD.test(token[token.length - 1]) || !after || !WORD.test(after);
  return okBefore && okAfter;
}

// Lower case without moving any offset (a few characters change length when lowered).
function lowerSameLength(text) {
  const lowered = text.toLowerCase();
  if (lowered.length === text.length) return lowered;
  return Array.from(text, (c) => {
    const l = c.toLowerCase();
    return l.length === c.length ? l : c;
  }).join('');
}
