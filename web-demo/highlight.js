// Where the deciding tokens are in the text: the core gives each explanation token its spans,
// byte offsets into the text's UTF-8 that point at what the person wrote (`Java` for the token
// `blank`, `&lt;` for `<`). This turns them into string indices, which are UTF-16.

// Returns non-overlapping [start, end, contribution] ranges in `text`, in text order, for the
// tokens that pushed towards the answer. Tokens come strongest first, so where two share a place
// (a name read as `bl` + `ank`), the stronger one marks it.
export function highlightRanges(text, explanation) {
  const index = utf16IndexOfByte(text);
  const taken = new Uint8Array(text.length);
  const ranges = [];
  for (const t of explanation) {
    if (!(t.weight > 0)) continue;
    for (const [startByte, endByte] of t.spans ?? []) {
      const start = index[startByte];
      const end = index[endByte];
      // An offset inside a character or past the end is not where the core points: skip it.
      if (start === undefined || end === undefined || start < 0 || end < 0 || end <= start) continue;
      if (taken.subarray(start, end).some((x) => x)) continue;
      taken.fill(1, start, end);
      ranges.push([start, end, t]);
    }
  }
  return ranges.sort((a, b) => a[0] - b[0]);
}

// For each UTF-8 byte offset of `text` (its length included), the UTF-16 index there, or -1
// inside a character.
function utf16IndexOfByte(text) {
  const bytes = new TextEncoder().encode(text).length;
  const index = new Int32Array(bytes + 1).fill(-1);
  let b = 0;
  let u = 0;
  for (const c of text) {
    index[b] = u;
    const cp = c.codePointAt(0);
    b += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    u += c.length;
  }
  index[b] = u;
  return index;
}
