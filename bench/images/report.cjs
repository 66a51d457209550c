// Writes the image compression section of docs/benchmarks.md from the JSON results.
// Usage: node report.cjs gateway.json sharp.json quality.json docs/benchmarks.md
'use strict';

const fs = require('fs');
const os = require('os');

const [gatewayPath, sharpPath, qualityPath, target] = process.argv.slice(2);
const gateway = JSON.parse(fs.readFileSync(gatewayPath, 'utf8'));
const sharp = JSON.parse(fs.readFileSync(sharpPath, 'utf8'));
const quality = JSON.parse(fs.readFileSync(qualityPath, 'utf8'));

// The scores of one output, `label` as in its file name (gateway, sharp-default, sharp-mozjpeg).
function scores(name, label) {
  const found = quality.scores.find((s) => s.case === name && s.output === label);
  if (!found) throw new Error(`no quality score for ${label}.${name}`);
  return `${found.ssim.toFixed(4)} | ${found.butteraugli_3norm.toFixed(3)}`;
}

const BEGIN = '<!-- image-compression:begin -->';
const END = '<!-- image-compression:end -->';

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
const fixed = (value, digits) => Number(value).toFixed(digits);

const labels = {
  photo: 'Photo-like JPEG, 4000×3000',
  screenshot: 'Screenshot PNG (opaque RGBA), 2880×1800',
  'photo-png': 'Photo-like PNG (RGB), 3000×2000',
};

const rows = [];
for (const ours of gateway.cases) {
  const title = `${labels[ours.name] || ours.name} (${mb(ours.input_bytes)})`;
  rows.push(
    `| ${title} | **gateway** | **${fixed(ours.ms_per_image_one_core, 1)}** | **${fixed(ours.images_per_second_all_cores, 1)}** | **${kb(ours.output_bytes)}** | ${scores(ours.name, 'gateway')} | ${ours.output_width}×${ours.output_height} |`,
  );
  for (const ref of sharp.cases.filter((c) => c.name === ours.name)) {
    const how = ref.variant === 'default' ? '`.jpeg({ quality: 85 })`' : '`.jpeg({ quality: 85, mozjpeg: true })`';
    const ratio = `${ours.output_bytes >= ref.output_bytes ? '+' : '−'}${(Math.abs(ours.output_bytes / ref.output_bytes - 1) * 100).toFixed(1)} %`;
    rows.push(
      `| | sharp ${how} | ${fixed(ref.ms_per_image_one_core, 1)} | ${fixed(ref.images_per_second_all_cores, 1)} | ${kb(ref.output_bytes)} (gateway ${ratio}) | ${scores(ref.name, `sharp-${ref.variant}`)} | ${ref.output_width}×${ref.output_height} |`,
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

Quality is scored the same way for every output (\`image-bench quality\`): the source is resized to
the output's size with the \`image\` crate's Lanczos3 (neither implementation's resizer), then
compared on luma with SSIM (\`image-compare\`'s mean over 8×8 windows; 1 is identical, higher is
better) and with butteraugli (libjxl's perceptual distance, 3-norm; 0 is identical, lower is
better).

| input | implementation | ms per image, one core | images/s, ${gateway.threads} cores | output | SSIM | butteraugli | output size |
| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |
${rows.join('\n')}

The whole request path for one image in a chat body (pre-check, body walk, base64 in and out,
worker hand-off, splice), median: ${request}.

Machine: ${os.cpus()[0].model}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${os.type()} ${os.release()};
load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (1, 5, 15 min) when the run ended.
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
