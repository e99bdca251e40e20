// Checks Athanor's rendered trees and diffs (athanor/live/rendered.h) with the OFFICIAL
// phoenix_live_view client's own merge and render code (its Rendered class, pinned in
// package.json), as a browser would run it:
//
//   node rendered_check.js CASES.json
//
// CASES.json: [{"steps": [{"wire": <join's rendered or a diff>, "html": "<expected HTML>"}, ...]}, ...]
// The first step of a case is what a join carries; each later one a diff, merged in order. After
// each step the client's HTML must be the expected HTML (Athanor's to_html of the same render).
// Prints "ok <steps>" and exits 0, or prints the first mismatch and exits 1.
'use strict';
const fs = require('fs');

// The client is written for a browser; its deep clone looks for structuredClone on `window`.
globalThis.window = globalThis;
// Rendered is internal to the bundle (not exported): evaluate the unchanged bundle with one line
// added after it that hands the class out.
const bundle = require.resolve('phoenix_live_view');
const mod = { exports: {} };
new Function('module', 'exports', 'require', fs.readFileSync(bundle, 'utf8') + '\nmodule.exports.__Rendered = Rendered;')(
  mod, mod.exports, require);
const Rendered = mod.exports.__Rendered;
if (typeof Rendered !== 'function') { console.log('no Rendered class in ' + bundle); process.exit(1); }

const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let steps = 0;
cases.forEach((c, ci) => {
  let r = null;
  c.steps.forEach((step, si) => {
    try {
      if (si === 0) r = new Rendered('phx-check', step.wire);
      else r.mergeDiff(step.wire);
    } catch (e) {
      console.log(JSON.stringify({ case: ci, step: si, error: String(e), wire: step.wire }));
      process.exit(1);
    }
    const html = r.toString().buffer;
    if (html !== step.html) {
      console.log(JSON.stringify({ case: ci, step: si, expected: step.html, client: html, wire: step.wire,
                                   steps: c.steps.map((s) => s.wire) }));
      process.exit(1);
    }
    steps++;
  });
});
console.log('ok ' + steps);
