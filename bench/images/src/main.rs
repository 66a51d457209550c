//! Times the gateway's request image compression on generated inputs, on one core and on all
//! cores, and prints the figures as JSON for `run.sh`. `generate DIR` writes the inputs that
//! the sharp reference (`sharp.cjs`) reads too, so both sides work on the same bytes; `run`
//! and `sharp.cjs` leave their outputs in `DIR/outputs`, and `quality DIR` scores every output
//! against its source the same way, whichever implementation wrote it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use bytes::Bytes;
use image::{ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use proxy::config::{ImageCompression, ImageFormat};
use proxy::downstream::body::inspect;
use proxy::rewrite::images::ImageService;
use proxy::rewrite::images::codec::{self, Limits};
use proxy::rewrite::upstream_body;
use serde_json::json;

mod quality;

const PHOTO: &str = "photo-4000x3000.jpg";
const SCREENSHOT: &str = "screenshot-2880x1800.png";
const PHOTO_PNG: &str = "photo-3000x2000.png";

/// Every input: the case name (also in the output file names), its file and media type.
const CASES: [(&str, &str, &str); 3] = [
    ("photo", PHOTO, "image/jpeg"),
    ("screenshot", SCREENSHOT, "image/png"),
    ("photo-png", PHOTO_PNG, "image/png"),
];

/// Where `run` and `sharp.cjs` write their outputs, under the inputs' directory.
const OUTPUTS: &str = "outputs";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", dir] => generate(Path::new(dir)),
        ["run", dir] => run(Path::new(dir), 20),
        ["run", dir, "--iterations", n] => run(Path::new(dir), n.parse().context("iterations")?),
        ["quality", dir] => quality::report(Path::new(dir), &CASES),
        _ => bail!(
            "usage: image-bench generate DIR | image-bench run DIR [--iterations N] | image-bench quality DIR"
        ),
    }
}

fn settings() -> ImageCompression {
    ImageCompression {
        enabled: true,
        max_size: 1600,
        min_bytes: 32 * 1024,
        quality: 0.85,
        format: ImageFormat::Jpeg,
    }
}

fn run(dir: &Path, iterations: usize) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cases = Vec::new();
    std::fs::create_dir_all(dir.join(OUTPUTS))?;
    for (name, file, mime) in CASES {
        let path = dir.join(file);
        let input = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let (width, height) = image::image_dimensions(&path)?;
        let settings = settings();
        let limits = Limits::default();
        let once = || codec::compress(&input, &settings, &limits);
        let output = once().map_err(|kept| anyhow::anyhow!("{file}: {kept}"))?;
        write(
            dir.join(OUTPUTS).join(format!("gateway.{name}.jpg")),
            &output.bytes,
        )?;
        once().ok();

        let mut single = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            std::hint::black_box(once().ok());
            single.push(started.elapsed());
        }

        let per_thread = iterations.max(4);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for _ in 0..per_thread {
                        std::hint::black_box(codec::compress(&input, &settings, &limits).ok());
                    }
                });
            }
        });
        let all_cores = (threads * per_thread) as f64 / started.elapsed().as_secs_f64();

        let request = request_path(&input, mime, iterations)?;
        cases.push(json!({
            "name": name,
            "input": file,
            "input_bytes": input.len(),
            "width": width,
            "height": height,
            "output_bytes": output.bytes.len(),
            "output_width": output.width,
            "output_height": output.height,
            "ms_per_image_one_core": millis(median(&mut single)),
            "images_per_second_all_cores": all_cores,
            "ms_per_request_body": millis(request),
        }));
    }
    let report = json!({"threads": threads, "iterations": iterations, "cases": cases});
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The whole request path for one image in a chat body: inspection, pre-check, walk, base64,
/// codec on the worker pool, the one splice. Median wall time.
fn request_path(input: &[u8], mime: &str, iterations: usize) -> anyhow::Result<Duration> {
    let url = format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(input)
    );
    let body = Bytes::from(serde_json::to_vec(&json!({
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
        ]}]
    }))?);
    let service = ImageService::new(1)?;
    let settings = settings();
    let system = actix_rt::System::new();
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let inspected = inspect(&body).map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = system
            .block_on(upstream_body(
                body.clone(),
                &inspected,
                &settings,
                &service,
                "bench",
            ))
            .for_deployment("deployment");
        times.push(started.elapsed());
        if out.len() >= body.len() {
            bail!("the request body did not shrink");
        }
    }
    Ok(median(&mut times))
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn generate(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let photo = photo(4000, 3000);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92).write_image(
        photo.as_raw(),
        photo.width(),
        photo.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    write(dir.join(PHOTO), &jpeg)?;

    let screenshot = screenshot(2880, 1800);
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(
        screenshot.as_raw(),
        screenshot.width(),
        screenshot.height(),
        image::ExtendedColorType::Rgba8,
    )?;
    write(dir.join(SCREENSHOT), &png)?;

    // A photo as an editor or a phone exports it to PNG: opaque RGB, 8 bits per channel.
    let photo = self::photo(3000, 2000);
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png).write_image(
        photo.as_raw(),
        photo.width(),
        photo.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    write(dir.join(PHOTO_PNG), &png)?;
    Ok(())
}

fn write(path: PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn hash(x: i32, y: i32, seed: u32) -> u32 {
    let mut h = (x as u32).wrapping_mul(0x27d4_eb2d)
        ^ (y as u32).wrapping_mul(0x1656_67b1)
        ^ seed.wrapping_mul(0x9e37_79b9);
    h = (h ^ (h >> 15)).wrapping_mul(0x85eb_ca6b);
    h = (h ^ (h >> 13)).wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn unit(h: u32) -> f32 {
    (h & 0xFFFF) as f32 / 65535.0
}

/// Smooth value noise in 0..1.
fn noise(x: f32, y: f32, seed: u32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i32, yf as i32);
    let (tx, ty) = (x - xf, y - yf);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let corner = |dx, dy| unit(hash(xi + dx, yi + dy, seed));
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

/// Fractal noise: structure from the scale of the frame down to a few pixels.
fn fbm(x: f32, y: f32, seed: u32, octaves: u32) -> f32 {
    let (mut sum, mut amplitude, mut frequency, mut total) = (0.0, 1.0, 1.0, 0.0);
    for octave in 0..octaves {
        sum += amplitude * noise(x * frequency, y * frequency, seed + octave);
        total += amplitude;
        amplitude *= 0.55;
        frequency *= 2.0;
    }
    sum / total
}

/// A photo-like frame: sky and ground, fractal texture at every scale, objects with edges,
/// and sensor grain.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / 700.0, y as f32 / 700.0);
        let horizon = 0.42 + 0.08 * fbm(fx * 0.6, 0.0, 11, 4);
        let v = y as f32 / height as f32;
        let texture = fbm(fx, fy, 1, 9);
        let object = fbm(fx * 1.7, fy * 1.7, 5, 5);
        let grain = (hash(x as i32, y as i32, 99) & 0x0F) as f32 - 7.5;
        let (r, g, b) = if v < horizon {
            let t = v / horizon;
            let cloud = (fbm(fx * 0.8, fy * 2.5, 3, 7) - 0.45).max(0.0) * 2.2;
            (
                90.0 + 80.0 * t + 160.0 * cloud,
                140.0 + 60.0 * t + 110.0 * cloud,
                210.0 + 30.0 * t + 40.0 * cloud,
            )
        } else if object > 0.56 {
            let shade = 0.5 + texture;
            (150.0 * shade, 70.0 * shade, 40.0 * shade)
        } else {
            let shade = 0.35 + 0.9 * texture;
            (90.0 * shade, 130.0 * shade, 50.0 * shade)
        };
        let px = |c: f32| (c + grain).clamp(0.0, 255.0) as u8;
        Rgb([px(r), px(g), px(b)])
    })
}

/// A screenshot-like frame: window chrome, a sidebar, lines of anti-aliased "text", buttons and
/// an embedded picture. Opaque RGBA, as screenshot tools save them.
fn screenshot(width: u32, height: u32) -> RgbaImage {
    let mut image = RgbaImage::from_pixel(width, height, Rgba([246, 246, 248, 255]));
    let fill = |image: &mut RgbaImage, x0: u32, y0: u32, w: u32, h: u32, c: [u8; 3]| {
        for y in y0..(y0 + h).min(height) {
            for x in x0..(x0 + w).min(width) {
                image.put_pixel(x, y, Rgba([c[0], c[1], c[2], 255]));
            }
        }
    };
    fill(&mut image, 0, 0, width, 80, [40, 40, 46]);
    fill(&mut image, 0, 80, 520, height - 80, [32, 33, 38]);
    // Text: rows of glyph-sized marks with soft edges, as anti-aliasing leaves them.
    let text =
        |image: &mut RgbaImage, x0: u32, x1: u32, y0: u32, rows: u32, ink: [u8; 3], seed: u32| {
            for row in 0..rows {
                let y = y0 + row * 40;
                let mut x = x0;
                let mut n = 0;
                while x + 30 < x1 {
                    let h = hash(x as i32, y as i32, seed);
                    if h.trailing_zeros() >= 3 {
                        x += 14; // a space between words
                    }
                    let w = 8 + h % 14;
                    let tall = 14 + (h >> 8) % 12;
                    for gy in 0..tall {
                        for gx in 0..w {
                            let edge = gx == 0 || gx + 1 == w || gy == 0 || gy + 1 == tall;
                            let stroke = (gx + gy + n) % 5 < 2 || gx == 1 || gy == tall / 2;
                            if !stroke && !edge {
                                continue;
                            }
                            let alpha = if edge { 0.35 } else { 1.0 };
                            let (px, py) = (x + gx, y + 28 - tall + gy);
                            if px < width && py < height {
                                let bg = *image.get_pixel(px, py);
                                let mix = |i: usize| {
                                    (f32::from(bg[i]) * (1.0 - alpha) + f32::from(ink[i]) * alpha)
                                        as u8
                                };
                                image.put_pixel(px, py, Rgba([mix(0), mix(1), mix(2), 255]));
                            }
                        }
                    }
                    x += w + 3;
                    n += 1;
                }
            }
        };
    text(&mut image, 40, 480, 120, 40, [200, 200, 205], 1);
    text(&mut image, 600, width - 80, 140, 14, [30, 30, 34], 2);
    for i in 0..4 {
        fill(&mut image, 600 + i * 260, 730, 220, 56, [30, 110, 230]);
    }
    text(&mut image, 600, 1500, 840, 20, [30, 30, 34], 3);
    let picture = photo(1100, 700);
    for (x, y, p) in picture.enumerate_pixels() {
        image.put_pixel(1620 + x, 860 + y, Rgba([p[0], p[1], p[2], 255]));
    }
    image
}
