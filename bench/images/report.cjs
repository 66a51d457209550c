// Writes the image compression section of docs/benchmarks.md from the two JSON results.
// Usage: node report.cjs gateway.json sharp.json docs/benchmarks.md
'use strict';

const fs = require('fs');
const os = require('os');

const [gatewayPath, sharpPath, target] = process.argv.slice(2);
const gateway = JSON.parse(fs.readFileSync(gatewayPath, 'utf8'));
const sharp = JSON.parse(fs.readFileSync(sharpPath, 'utf8'));

const BEGIN = '<!-- image-compression:begin -->';
const END = '<!-- image-compression:end -->';

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
const fixed = (value, digits) => Number(value).toFixed(digits);

const labels = {
  photo: 'Photo-like JPEG, 4000×3000',
  screenshot: 'Screenshot PNG (opaque RGBA), 2880×1800',
};

const rows = [];
for (const ours of gateway.cases) {
  const title = `${labels[ours.name] || ours.name} (${mb(ours.input_bytes)})`;
  rows.push(
    `| ${title} | **gateway** | **${fixed(ours.ms_per_image_one_core, 1)}** | **${fixed(ours.images_per_second_all_cores, 1)}** | ${kb(ours.output_bytes)} | ${ours.output_width}×${ours.output_height} |`,
  );
  for (const ref of sharp.cases.filter((c) => c.name === ours.name)) {
    const how = ref.variant === 'default' ? '`.jpeg({ quality: 85 })`' : '`.jpeg({ quality: 85, mozjpeg: true })`';
    rows.push(
      `| | sharp ${how} | ${fixed(ref.ms_per_image_one_core, 1)} | ${fixed(ref.images_per_second_all_cores, 1)} | ${kb(ref.output_bytes)} | ${ref.output_width}×${ref.output_height} |`,
    );
  }
}

const request = gateway.cases
  .map((c) => `${c.name} ${fixed(c.ms_per_request_body, 1)} ms`)
  .join(', ');

const section = `${BEGIN}
## Request image compression

Settings: \`maxSize\` 1600, \`quality\` 0.85, \`format\` "jpeg" (the defaults). Inputs are generated
by \`image-bench generate\`, so both sides read the same bytes. "One core" is the median time per
image on one thread (decode, resize, encode, from bytes in memory to bytes in memory);
"all cores" runs ${gateway.threads} images side by side. sharp runs with its operation cache off and one libvips
thread per image (\`sharp.concurrency(1)\`, \`UV_THREADPOOL_SIZE=${sharp.threads}\`).

| input | implementation | ms per image, one core | images/s, ${gateway.threads} cores | output | output size |
| --- | --- | ---: | ---: | ---: | --- |
${rows.join('\n')}

The whole request path for one image in a chat body (pre-check, body walk, base64 in and out,
worker hand-off, splice), median: ${request}.

Machine: ${os.cpus()[0].model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()}.
Versions: ${process.env.RUSTC_VERSION || 'rustc'}; sharp ${sharp.sharp} (libvips ${sharp.vips}), node ${process.version}.
${gateway.iterations} iterations per input. Measured ${new Date().toISOString().slice(0, 10)} with \`bench/images/run.sh\`.
${END}`;

let doc = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '# Benchmarks\n';
const start = doc.indexOf(BEGIN);
const end = doc.indexOf(END);
if (start !== -1 && end > start) {
  doc = doc.slice(0, start) + section + doc.slice(end + END.length);
} else {
  doc = `${doc.trimEnd()}\n\n${section}\n`;
}
fs.writeFileSync(target, doc);
