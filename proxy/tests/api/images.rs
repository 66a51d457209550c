//! Request image compression, end to end: images generated here go in, and the assertions are
//! on what the fake upstream received.

use std::io::Cursor;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use serde_json::{Value, json};

use crate::helpers::*;

/// A photo-like frame: smooth gradients with grain, which JPEG compresses the way it does photos.
pub(crate) fn photo(width: u32, height: u32) -> RgbImage {
    let mut state = 0x9E37_79B9_u32;
    RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let grain = (state % 24) as i32 - 12;
        let px = |v: u32| (v as i32 + grain).clamp(0, 255) as u8;
        Rgb([
            px(x * 200 / width + 30),
            px(y * 180 / height + 40),
            px(((x + y) / 7) % 200 + 20),
        ])
    })
}

pub(crate) fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("jpeg");
    out
}

fn encoded(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", BASE64.encode(bytes))
}

/// The media type and bytes of a base64 data URL.
fn parse_data_url(url: &str) -> (String, Vec<u8>) {
    let rest = url.strip_prefix("data:").expect("a data URL");
    let (meta, payload) = rest.split_once(',').expect("a comma");
    let mime = meta.strip_suffix(";base64").expect("base64");
    (mime.to_string(), BASE64.decode(payload).expect("base64"))
}

fn chat_with_image(url: &str) -> Value {
    json!({
        "model": "gpt-5-mini",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image? \u{e9}"},
            {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
        ]}],
        "temperature": 0.2
    })
}

/// Sends `body` as these exact bytes and returns them.
async fn send(app: &TestApp, path: &str, body: &Value) -> String {
    let text = serde_json::to_string(body).expect("json");
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(text.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    text
}

fn received_body(app: &TestApp, index: usize) -> String {
    String::from_utf8(app.fake.requests()[index].body.to_vec()).expect("utf8")
}

/// What the upstream gets when no image changes: only `model` differs.
fn with_deployment(sent: &str, deployment: &str) -> String {
    sent.replacen(
        "\"model\":\"gpt-5-mini\"",
        &format!("\"model\":\"{deployment}\""),
        1,
    )
}

async fn image_stats(app: &TestApp, check: impl Fn(&Value) -> bool) -> Value {
    app.wait_for_stats(|s| check(&s["images"])).await["images"].clone()
}

#[actix_web::test]
async fn a_large_photo_is_resized_to_max_size_as_jpeg_and_nothing_else_changes() {
    let app = spawn_app().await;
    let original = jpeg(&photo(2400, 1800), 95);
    let original_url = data_url("image/jpeg", &original);
    let sent = send(
        &app,
        "/v1/chat/completions",
        &chat_with_image(&original_url),
    )
    .await;

    let received = received_body(&app, 0);
    let json: Value = serde_json::from_str(&received).expect("json upstream");
    let url = json["messages"][0]["content"][1]["image_url"]["url"]
        .as_str()
        .expect("url");
    let (mime, bytes) = parse_data_url(url);
    assert_eq!(mime, "image/jpeg");
    assert!(
        bytes.len() < original.len() / 2,
        "{} vs {}",
        bytes.len(),
        original.len()
    );
    assert_eq!(
        image::guess_format(&bytes).expect("format"),
        image::ImageFormat::Jpeg
    );
    let image = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!((image.width(), image.height()), (1600, 1200));
    assert_eq!(
        received,
        with_deployment(&sent, "dep-mini").replacen(&original_url, url, 1),
        "only the model and the image changed"
    );

    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["compressed"], 1);
    assert_eq!(stats["bytes_before"], original.len());
    assert_eq!(stats["bytes_after"], bytes.len());
}

#[actix_web::test]
async fn a_transparent_png_is_kept_for_jpeg_and_keeps_its_alpha_as_webp() {
    let picture = photo(900, 600);
    let cutout = RgbaImage::from_fn(900, 600, |x, y| {
        let inside = (x / 60 + y / 60) % 2 == 0;
        let p = picture.get_pixel(x, y);
        Rgba([p[0], p[1], p[2], if inside { 255 } else { 0 }])
    });
    let png = encoded(&DynamicImage::ImageRgba8(cutout), image::ImageFormat::Png);
    let body = chat_with_image(&data_url("image/png", &png));

    let app = spawn_app().await;
    let sent = send(&app, "/v1/chat/completions", &body).await;
    assert_eq!(received_body(&app, 0), with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["skipped"]["transparent"], 1);

    let app = spawn_app_with_config(|c| {
        c["server"]["imageCompression"] = json!({"format": "webp", "maxSize": 300});
    })
    .await;
    send(&app, "/v1/chat/completions", &body).await;
    let json = app.fake.requests()[0].json();
    let (mime, bytes) = parse_data_url(
        json["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()
            .expect("url"),
    );
    assert_eq!(mime, "image/webp");
    let image = image::load_from_memory(&bytes).expect("webp decodes");
    assert_eq!((image.width(), image.height()), (300, 200));
    assert!(image.color().has_alpha());
    let rgba = image.into_rgba8();
    assert!(rgba.pixels().any(|p| p[3] == 0), "transparency survives");
    assert!(rgba.pixels().any(|p| p[3] == 255));
}

#[actix_web::test]
async fn an_animated_gif_is_forwarded_as_it_came() {
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut gif, 30);
        let frames = (0..3u8).map(|i| {
            Frame::new(RgbaImage::from_fn(240, 160, |x, y| {
                Rgba([(x as u8).wrapping_mul(i + 1), y as u8, 60 * i, 255])
            }))
        });
        encoder.encode_frames(frames).expect("gif");
    }
    let app =
        spawn_app_with_config(|c| c["server"]["imageCompression"] = json!({"maxSize": 64})).await;
    let sent = send(
        &app,
        "/v1/chat/completions",
        &chat_with_image(&data_url("image/gif", &gif)),
    )
    .await;
    assert_eq!(received_body(&app, 0), with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["skipped"]["animated"], 1);
}

#[actix_web::test]
async fn a_webp_in_image_base64_becomes_raw_base64_jpeg() {
    let webp = encoded(
        &DynamicImage::ImageRgb8(photo(1000, 700)),
        image::ImageFormat::WebP,
    );
    let app =
        spawn_app_with_config(|c| c["server"]["imageCompression"] = json!({"maxSize": 500})).await;
    let body =
        json!({"model": "gpt-image-1", "prompt": "a cat", "image_base64": BASE64.encode(&webp)});
    send(&app, "/v1/images/generations", &body).await;
    let json = app.fake.requests()[0].json();
    let raw = json["image_base64"].as_str().expect("image_base64");
    assert!(!raw.starts_with("data:"), "stays bare base64");
    let bytes = BASE64.decode(raw).expect("base64");
    assert_eq!(
        image::guess_format(&bytes).expect("format"),
        image::ImageFormat::Jpeg
    );
    let image = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!((image.width(), image.height()), (500, 350));
    assert_eq!(json["prompt"], "a cat");
}

#[actix_web::test]
async fn a_small_jpeg_that_needs_no_resize_reaches_upstream_as_it_came() {
    let small = jpeg(&photo(64, 64), 40);
    assert!(small.len() < 32 * 1024);
    let url = data_url("image/jpeg", &small);
    let app = spawn_app().await;
    let sent = send(&app, "/v1/chat/completions", &chat_with_image(&url)).await;
    let received = received_body(&app, 0);
    let json: Value = serde_json::from_str(&received).expect("json upstream");
    assert_eq!(json["messages"][0]["content"][1]["image_url"]["url"], url);
    assert_eq!(received, with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["skipped"]["small"], 1);
    assert_eq!(stats["bytes_before"], stats["bytes_after"]);
}

#[actix_web::test]
async fn a_tiny_image_that_would_grow_stays_byte_for_byte() {
    let tiny = encoded(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(6, 6, Rgb([250, 20, 20]))),
        image::ImageFormat::Png,
    );
    let app =
        spawn_app_with_config(|c| c["server"]["imageCompression"] = json!({"minBytes": 0})).await;
    let body = json!({"model": "gpt-5-mini", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "colour?"},
        {"type": "input_image", "image_url": data_url("image/png", &tiny)}
    ]}]});
    let sent = send(&app, "/v1/responses", &body).await;
    assert_eq!(received_body(&app, 0), with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["skipped"]["not_smaller"], 1);
    assert_eq!(stats["bytes_before"], stats["bytes_after"]);
}

#[actix_web::test]
async fn corrupt_base64_and_garbage_images_are_forwarded_and_counted() {
    let app = spawn_app().await;
    let garbage = data_url("image/jpeg", b"\xFF\xD8\xFF\xE0 this is not a jpeg at all");
    let body = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@not*base64@@@"}},
        {"type": "image_url", "image_url": {"url": garbage}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]});
    let sent = send(&app, "/v1/chat/completions", &body).await;
    assert_eq!(received_body(&app, 0), with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 2).await;
    assert_eq!(stats["skipped"]["bad_base64"], 1);
    assert_eq!(stats["skipped"]["undecodable"], 1);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).expect("len").to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[actix_web::test]
async fn a_png_claiming_30000_by_30000_pixels_is_refused_before_decoding() {
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&30_000_u32.to_be_bytes());
    ihdr.extend_from_slice(&30_000_u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut bomb, b"IHDR", &ihdr);
    // A few bytes of a zlib stream of zeros: what a real bomb would inflate without end.
    png_chunk(
        &mut bomb,
        b"IDAT",
        &[0x78, 0x9C, 0xED, 0xC1, 0x01, 0x01, 0x00, 0x00],
    );
    png_chunk(&mut bomb, b"IEND", &[]);

    let app = spawn_app().await;
    let sent = send(
        &app,
        "/v1/chat/completions",
        &chat_with_image(&data_url("image/png", &bomb)),
    )
    .await;
    assert_eq!(received_body(&app, 0), with_deployment(&sent, "dep-mini"));
    let stats = image_stats(&app, |i| i["seen"] == 1).await;
    assert_eq!(stats["skipped"]["too_large"], 1);
}

#[actix_web::test]
async fn images_of_one_request_are_all_compressed_and_repeats_processed_once() {
    let app =
        spawn_app_with_config(|c| c["server"]["imageCompression"] = json!({"maxSize": 400})).await;
    let a = data_url("image/jpeg", &jpeg(&photo(1200, 800), 95));
    let b = data_url(
        "image/png",
        &encoded(
            &DynamicImage::ImageRgb8(photo(800, 1200)),
            image::ImageFormat::Png,
        ),
    );
    let body = json!({"model": "gpt-5-mini", "messages": [
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": a}},
            {"type": "image_url", "image_url": {"url": b}}
        ]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": a}}]}
    ]});
    send(&app, "/v1/chat/completions", &body).await;
    let json = app.fake.requests()[0].json();
    let url = |m: usize, c: usize| {
        json["messages"][m]["content"][c]["image_url"]["url"]
            .as_str()
            .expect("url")
            .to_string()
    };
    assert_eq!(url(0, 0), url(1, 0));
    let sizes: Vec<(u32, u32)> = [url(0, 0), url(0, 1)]
        .iter()
        .map(|u| {
            let (mime, bytes) = parse_data_url(u);
            assert_eq!(mime, "image/jpeg");
            let image = image::load_from_memory(&bytes).expect("decodes");
            (image.width(), image.height())
        })
        .collect();
    assert_eq!(sizes, vec![(400, 267), (267, 400)]);
    let stats = image_stats(&app, |i| i["seen"] == 3).await;
    assert_eq!(
        (stats["compressed"].as_u64(), stats["duplicates"].as_u64()),
        (Some(3), Some(1))
    );
}

#[actix_web::test]
async fn compression_settings_follow_a_hot_reload() {
    let app = spawn_app().await;
    let image = data_url("image/jpeg", &jpeg(&photo(1000, 500), 95));
    let body = chat_with_image(&image);
    send(&app, "/v1/chat/completions", &body).await;
    let first = app.fake.requests()[0].json();
    let (_, bytes) = parse_data_url(
        first["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()
            .expect("url"),
    );
    assert_eq!(image::load_from_memory(&bytes).expect("jpeg").width(), 1000);

    let mut config = base_config(&app.fake);
    config["server"]["imageCompression"] = json!({"maxSize": 250});
    write_json(&app.config_path, &config);
    eventually("config generation 2", Duration::from_secs(5), || async {
        app.ops_json("/status").await["config"]["generation"] == 2
    })
    .await;
    send(&app, "/v1/chat/completions", &body).await;
    let second = app.fake.requests()[1].json();
    let (_, bytes) = parse_data_url(
        second["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()
            .expect("url"),
    );
    let resized = image::load_from_memory(&bytes).expect("jpeg");
    assert_eq!((resized.width(), resized.height()), (250, 125));

    config["server"]["imageCompression"] = json!({"enabled": false});
    write_json(&app.config_path, &config);
    eventually("config generation 3", Duration::from_secs(5), || async {
        app.ops_json("/status").await["config"]["generation"] == 3
    })
    .await;
    let sent = send(&app, "/v1/chat/completions", &body).await;
    assert_eq!(received_body(&app, 2), with_deployment(&sent, "dep-mini"));
}

#[actix_web::test]
async fn image_counters_are_served_as_json_and_prometheus_text() {
    let app = spawn_app().await;
    send(
        &app,
        "/v1/chat/completions",
        &chat_with_image(&data_url("image/jpeg", &jpeg(&photo(1800, 900), 95))),
    )
    .await;
    let stats = image_stats(&app, |i| i["compressed"] == 1).await;
    assert_eq!(stats["requests"], 1);
    assert!(stats["bytes_after"].as_u64() < stats["bytes_before"].as_u64());
    let text = app
        .http
        .get(format!("{}/metrics", app.ops))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("gateway_images_compressed_total 1"), "{text}");
    assert!(text.contains("gateway_images_skipped_total{reason=\"not_smaller\"} 0"));
    assert!(text.contains("gateway_images_bytes_total{stage=\"before\"}"));
}
