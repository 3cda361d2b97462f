#!/usr/bin/env node
// Opens a study's SR in OHIF in headless Chromium (playwright-core driving the system chromium),
// loads the SR's measurements as editable tools, and takes a screenshot.
//
//   node tests/viewer/ohif_page.mjs --url URL --out shot.png [--timeout S] [--chromium PATH]
//
// URL is the viewer page, e.g. http://127.0.0.1:PORT/viewer?StudyInstanceUIDs=<study>&
// initialSeriesInstanceUID=<SR series>.  Steps:
//   1. wait until OHIF shows the SR in its SR viewport and asks "Do you want to continue tracking
//      measurements for this study?" (it asks only when the SR has measurements its adapters can
//      load as tools); record the page text then (OHIF's own SR display: "<concept>: <value> <unit>");
//   2. skip the first-visit tour and answer Yes: OHIF runs the adapters' generateToolState and
//      draws each measurement as a Cornerstone tool (for our SR: a CobbAngle per aTFA);
//   3. wait until the tools' SVG annotations are drawn, then take the screenshot.
// When Cornerstone reports an image load error (IMAGE_LOAD_ERROR; it happens now and then here,
// see docs/viewer.md) the page is opened again in a new tab, up to twice.
// Prints JSON: {prompted, hydrated, srText, text, svgText, lines (solid SVG lines of the
// annotations, page px: [x1, y1, x2, y2]), viewport (the SVG layer's box), console (errors and
// warnings), failed (requests), loadFailed, earlierVisits (the console errors of visits opened
// again), elapsedS}.  Exit status 0 (the caller asserts), 2 on a driver error.

import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const out = { timeout: 120, chromium: '/usr/bin/chromium', url: null, out: null };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--url') out.url = argv[(i += 1)];
    else if (a === '--out') out.out = argv[(i += 1)];
    else if (a === '--timeout') out.timeout = Number(argv[(i += 1)]);
    else if (a === '--chromium') out.chromium = argv[(i += 1)];
  }
  if (!out.url || !out.out) {
    process.stderr.write('usage: ohif_page.mjs --url URL --out PNG [--timeout S] [--chromium PATH]\n');
    process.exit(2);
  }
  return out;
}

/** What the page shows: its text, the annotation layer's text and solid lines. */
function pageState() {
  const layer = document.querySelector('svg.svg-layer');
  const box = layer ? layer.getBoundingClientRect() : null;
  const lines = layer
    ? [...layer.querySelectorAll('line')]
        .filter((l) => !l.getAttribute('stroke-dasharray'))
        .map((l) => ['x1', 'y1', 'x2', 'y2'].map((k, i) => Number(l.getAttribute(k)) + (i % 2 ? box.y : box.x)))
    : [];
  return {
    text: document.body.innerText.slice(0, 6000),
    svgText: layer ? layer.textContent : '',
    lines,
    viewport: box ? { x: box.x, y: box.y, width: box.width, height: box.height } : null,
    prompt: document.body.innerText.includes('continue tracking measurements'),
  };
}

/** Skip OHIF's first-visit tour (its overlay takes the pointer) and answer the tracking prompt. */
function answerYes() {
  for (const b of document.querySelectorAll('button')) if (b.textContent.trim() === 'Skip all') b.click();
  const yes = document.querySelector('[data-cy=yes-hydrate-btn]');
  if (yes) yes.click();
  return Boolean(yes);
}

const args = parseArgs(process.argv.slice(2));
const started = Date.now();
const deadline = started + args.timeout * 1000;
//: A page whose image load failed (Cornerstone IMAGE_LOAD_ERROR) is opened again, this often.
const RETRIES = 2;

/** One visit of the viewer page in a fresh tab; returns what the page showed. */
async function visit(browser, png) {
  const consoleLines = [];
  const failed = [];
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') consoleLines.push(`${msg.type()}: ${msg.text()}`.slice(0, 400));
  });
  page.on('pageerror', (err) => consoleLines.push(`pageerror: ${String(err).slice(0, 400)}`));
  page.on('requestfailed', (req) => failed.push(`${req.method()} ${req.url()} ${req.failure()?.errorText}`));
  page.on('response', (rsp) => {
    if (rsp.status() >= 400) failed.push(`${rsp.status()} ${rsp.url()}`);
  });
  const loadFailed = () => consoleLines.some((l) => l.includes('IMAGE_LOAD_ERROR'));
  await page.goto(args.url, { waitUntil: 'domcontentloaded', timeout: args.timeout * 1000 });

  let s = await page.evaluate(pageState);
  while (Date.now() < deadline && !s.prompt) {
    await page.waitForTimeout(500);
    s = await page.evaluate(pageState);
  }
  const prompted = s.prompt;
  // OHIF's SR display draws its labels in the SVG layer once the referenced image is shown
  const labelsBy = Math.min(deadline, Date.now() + 30000);
  while (Date.now() < labelsBy && !s.svgText.trim() && !loadFailed()) {
    await page.waitForTimeout(500);
    s = await page.evaluate(pageState);
  }
  await page.waitForTimeout(500);
  s = await page.evaluate(pageState);
  const srText = `${s.text}\n${s.svgText}`;
  let hydrated = false;
  if (prompted && !loadFailed()) {
    hydrated = await page.evaluate(answerYes);
    while (Date.now() < deadline) {
      await page.waitForTimeout(500);
      s = await page.evaluate(pageState);
      if (!s.prompt && s.lines.length) break;
    }
  }
  await page.waitForTimeout(1500); // last frame
  s = await page.evaluate(pageState);
  await page.screenshot({ path: png });
  await page.close();
  return {
    prompted,
    hydrated,
    srText,
    text: s.text,
    svgText: s.svgText,
    lines: s.lines,
    viewport: s.viewport,
    console: consoleLines.slice(0, 60),
    failed: failed.slice(0, 40),
    loadFailed: loadFailed(),
  };
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    args: ['--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--no-sandbox',
      '--disable-dev-shm-usage'],
  });
  const earlier = [];
  let result = await visit(browser, args.out);
  while (result.loadFailed && earlier.length < RETRIES && Date.now() < deadline) {
    earlier.push({ console: result.console.filter((l) => l.startsWith('error') || l.startsWith('pageerror')) });
    result = await visit(browser, args.out);
  }
  result.earlierVisits = earlier;
  result.elapsedS = (Date.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
} catch (err) {
  process.stderr.write(`driver error: ${err?.stack || err}\n`);
  process.exit(2);
} finally {
  if (browser) await browser.close();
}
