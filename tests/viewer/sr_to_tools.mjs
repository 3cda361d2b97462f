#!/usr/bin/env node
// Reads a DICOM SR the way OHIF does and prints the Cornerstone3D tool state it yields, as JSON.
//
//   node tests/viewer/sr_to_tools.mjs SR.dcm [--spacing ROW_MM,COL_MM]
//
// The SR is parsed with dcmjs and naturalized (dcmjs.data.DicomMetaDictionary), then given to
// @cornerstonejs/adapters' adaptersSR.Cornerstone3D.MeasurementReport.generateToolState, the call
// OHIF's cornerstone-dicom-sr extension makes when it loads ("hydrates") an SR.  Every image the SR
// references gets an image id and an image plane (identity orientation, origin 0, the given pixel
// spacing, 1 mm when left out), registered with @cornerstonejs/core's metadata, so the adapters'
// image -> world conversion works without a browser.
//
// Output on stdout: {"tools": [{toolType, trackingIdentifier, trackingUniqueIdentifier,
// referencedSOPInstanceUID, value, points (image coordinates, SCOORD frame: top-left corner of the
// first pixel at 0,0), world, finding, findingSites}], "warnings": [...], "versions": {...}}.
// "warnings" holds what the adapters reported on the console with console.warn (they catch a
// group they cannot read and warn instead of throwing).  Exit status 2 when the SR cannot be read.

import { readFileSync } from 'node:fs';

const warnings = [];
const log = [];
console.log = (...args) => log.push(args.map(String).join(' ')); // the adapters print each tool
console.warn = (...args) =>
  warnings.push(args.map((a) => (a instanceof Error ? a.stack : typeof a === 'object' ? 'object' : String(a))).join(' '));

const dcmjs = (await import('dcmjs')).default;
const core = await import('@cornerstonejs/core');
const { adaptersSR } = await import('@cornerstonejs/adapters');

function parseArgs(argv) {
  const out = { path: null, spacing: [1, 1] };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--spacing') {
      out.spacing = argv[(i += 1)].split(',').map(Number);
    } else {
      out.path = argv[i];
    }
  }
  if (!out.path || out.spacing.length !== 2 || out.spacing.some((v) => !(v > 0))) {
    process.stderr.write('usage: sr_to_tools.mjs SR.dcm [--spacing ROW_MM,COL_MM]\n');
    process.exit(2);
  }
  return out;
}

function asArray(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** Every Referenced SOP Instance UID (with its frame, 1 when not given) in the content tree. */
function referencedImages(items, found = new Map()) {
  for (const item of asArray(items)) {
    for (const ref of asArray(item.ReferencedSOPSequence)) {
      const frame = asArray(ref.ReferencedFrameNumber)[0] ?? 1;
      found.set(`${ref.ReferencedSOPInstanceUID}:${frame}`, ref.ReferencedSOPInstanceUID);
    }
    referencedImages(item.ContentSequence, found);
  }
  return found;
}

function code(seq) {
  const c = asArray(seq)[0];
  return c ? { value: c.CodeValue, scheme: c.CodingSchemeDesignator, meaning: c.CodeMeaning } : null;
}

const args = parseArgs(process.argv.slice(2));
let dataset;
try {
  const bytes = readFileSync(args.path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const file = dcmjs.data.DicomMessage.readFile(buffer);
  dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(file.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(file.meta);
} catch (err) {
  process.stderr.write(`cannot read ${args.path}: ${err}\n`);
  process.exit(2);
}

const imageIdBySopFrame = {};
for (const [key, uid] of referencedImages(dataset.ContentSequence)) {
  imageIdBySopFrame[key] = `knee-node:${key}`;
  void uid;
}
const [rowSpacing, columnSpacing] = args.spacing;
const plane = {
  frameOfReferenceUID: '1.2.3.4',
  rowCosines: [1, 0, 0],
  columnCosines: [0, 1, 0],
  imagePositionPatient: [0, 0, 0],
  rowPixelSpacing: rowSpacing,
  columnPixelSpacing: columnSpacing,
};
const known = new Set(Object.values(imageIdBySopFrame));
core.metaData.addProvider((type, imageId) => (type === 'imagePlaneModule' && known.has(imageId) ? plane : undefined), 10000);

const MeasurementReport = adaptersSR.Cornerstone3D.MeasurementReport;
const state = MeasurementReport.generateToolState(dataset, imageIdBySopFrame, core.metaData);

const tools = [];
for (const [toolType, measurements] of Object.entries(state)) {
  for (const m of measurements) {
    const { annotation } = m;
    const imageId = annotation.metadata.referencedImageId;
    const world = asArray(annotation.data?.handles?.points).map((p) => Array.from(p));
    const stats = annotation.data?.cachedStats?.[`imageId:${imageId}`] ?? {};
    const value = stats.angle ?? stats.length ?? null;
    tools.push({
      toolType,
      toolName: annotation.metadata.toolName,
      trackingIdentifier: null,
      trackingUniqueIdentifier: m.TrackingUniqueIdentifier ?? null,
      referencedSOPInstanceUID: m.sopInstanceUid ?? null,
      referencedImageId: imageId ?? null,
      value: value === null ? null : Number(value),
      points: world.map((p) => core.utilities.worldToImageCoords(imageId, p)),
      world,
      finding: code(m.finding),
      findingSites: asArray(m.findingSites).map((s) => code(s)),
      description: m.description ?? null,
    });
  }
}
// The tracking identifier of each group, in document order, for the tools' provenance.
const groups = asArray(
  asArray(dataset.ContentSequence).find((i) => asArray(i.ConceptNameCodeSequence)[0]?.CodeMeaning === 'Imaging Measurements')
    ?.ContentSequence,
);
const trackingByUid = {};
for (const g of groups) {
  const items = asArray(g.ContentSequence);
  const text = items.find((i) => asArray(i.ConceptNameCodeSequence)[0]?.CodeValue === '112039');
  const uid = items.find((i) => asArray(i.ConceptNameCodeSequence)[0]?.CodeValue === '112040');
  if (uid) trackingByUid[uid.UID] = text?.TextValue ?? null;
}
for (const t of tools) t.trackingIdentifier = trackingByUid[t.trackingUniqueIdentifier] ?? null;

const here = new URL('./node_modules/', import.meta.url);
const versions = Object.fromEntries(
  ['dcmjs', '@cornerstonejs/adapters', '@cornerstonejs/core'].map((name) => [
    name,
    JSON.parse(readFileSync(new URL(`${name}/package.json`, here), 'utf8')).version,
  ]),
);
process.stdout.write(`${JSON.stringify({ tools, warnings, groups: groups.length, versions }, null, 1)}\n`);
