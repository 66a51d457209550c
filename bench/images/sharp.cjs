// The reference: the same inputs and settings through sharp (libvips + mozjpeg), as the original
// gateway compressed request images. Prints JSON like image-bench's and leaves each output in
// DIR/outputs as sharp-VARIANT.CASE.jpg, for `image-bench quality`.
// Usage: node sharp.cjs DIR ITERATIONS THREADS   (SHARP_PREFIX: where sharp is installed)
'use strict';

const fs = require('fs');
const path = require('path');
const sharp = require(require.resolve('sharp', { paths: [path.join(process.env.SHARP_PREFIX || '.', 'node_modules')] }));

const [dir, iterationsArg, threadsArg] = process.argv.slice(2);
const iterations = Number(iterationsArg || 20);
const threads = Number(threadsArg || 1);
const MAX_SIZE = 1600;
const QUALITY = 85;

// No operation cache (every run does the full work); one libvips thread per image, so that
// "one core" is one core and parallelism comes from running images side by side.
sharp.cache(false);
sharp.concurrency(1);

const variants = {
  // sharp's defaults for .jpeg(): libjpeg-turbo behaviour, optimised Huffman tables, 4:2:0.
  default: { quality: QUALITY },
  // mozjpeg's own defaults: trellis quantisation, progressive scans; smaller and slower.
  mozjpeg: { quality: QUALITY, mozjpeg: true },
};

function compress(input, jpeg) {
  return sharp(input)
    .resize(MAX_SIZE, MAX_SIZE, { fit: 'inside', withoutEnlargement: true })
    .jpeg(jpeg)
    .toBuffer({ resolveWithObject: true });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(input, jpeg) {
  const first = await compress(input, jpeg);
  await compress(input, jpeg);
  const times = [];
  for (let i = 0; i < iterations; i++) {
    const started = process.hrtime.bigint();
    await compress(input, jpeg);
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  const perWorker = Math.max(iterations, 4);
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: threads }, async () => {
      for (let i = 0; i < perWorker; i++) await compress(input, jpeg);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    output_bytes: first.info.size,
    output_width: first.info.width,
    output_height: first.info.height,
    ms_per_image_one_core: Math.round(median(times) * 10) / 10,
    images_per_second_all_cores: (threads * perWorker) / seconds,
  };
}

async function main() {
  const cases = [];
  fs.mkdirSync(path.join(dir, 'outputs'), { recursive: true });
  for (const [name, file] of [
    ['photo', 'photo-4000x3000.jpg'],
    ['screenshot', 'screenshot-2880x1800.png'],
    ['photo-png', 'photo-3000x2000.png'],
  ]) {
    const input = fs.readFileSync(path.join(dir, file));
    for (const [variant, jpeg] of Object.entries(variants)) {
      const output = await compress(input, jpeg);
      fs.writeFileSync(path.join(dir, 'outputs', `sharp-${variant}.${name}.jpg`), output.data);
      cases.push({ name, variant, input: file, input_bytes: input.length, ...(await measure(input, jpeg)) });
    }
  }
  console.log(JSON.stringify({ sharp: sharp.versions.sharp, vips: sharp.versions.vips, threads, iterations, cases }, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
