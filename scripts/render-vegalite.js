#!/usr/bin/env node
// Renders a Vega-Lite v5 spec, read as JSON from standard input, to a PNG on
// standard output: vega-lite compiles it, vega draws it headless as SVG and
// sharp (librsvg) rasterises the SVG. The notebook kernel runs this as a
// synchronous child process, so charts get a PNG form without making the
// display functions asynchronous. Usage: render-vegalite.js [SCALE] < spec.json
'use strict';
const vegaLite = require('vega-lite');
const vega = require('vega');
const sharp = require('sharp');

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const spec = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const scale = Number(process.argv[2] ?? 2);
  if (!(scale > 0 && scale <= 8)) throw new Error(`Invalid scale ${process.argv[2]}: expected a number in (0, 8]`);
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG(scale);
  view.finalize();
  const png = await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png().toBuffer();
  process.stdout.write(png);
}

main().catch((error) => {
  process.stderr.write(`render-vegalite: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
