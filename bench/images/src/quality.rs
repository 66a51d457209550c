//! Scores every output in `DIR/outputs` against its source, the same way whichever
//! implementation wrote it: the source is resized to the output's size (Lanczos3, the `image`
//! crate's, a third implementation beside the gateway's and libvips'), then compared with
//! SSIM on luma (`image-compare`'s mean SSIM over 8×8 windows) and with butteraugli (libjxl's
//! perceptual distance, max-norm and 3-norm). Output files are named `LABEL.CASE.jpg`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use serde_json::json;

pub fn report(dir: &Path, cases: &[(&str, &str, &str)]) -> anyhow::Result<()> {
    let sources: HashMap<&str, &str> = cases.iter().map(|(name, file, _)| (*name, *file)).collect();
    let mut outputs = Vec::new();
    for entry in std::fs::read_dir(dir.join(super::OUTPUTS)).context("reading the outputs")? {
        let path = entry?.path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jpg"))
        else {
            continue;
        };
        let Some((label, case)) = stem.split_once('.') else {
            bail!("{}: not named LABEL.CASE.jpg", path.display());
        };
        if sources.contains_key(case) {
            outputs.push((case.to_string(), label.to_string(), path.clone()));
        }
    }
    outputs.sort();

    let mut scores = Vec::new();
    let mut source: Option<(String, RgbImage)> = None;
    for (case, label, path) in outputs {
        if source.as_ref().is_none_or(|(name, _)| *name != case) {
            let file = dir.join(sources[case.as_str()]);
            let image = image::open(&file).with_context(|| format!("{}", file.display()))?;
            source = Some((case.clone(), image.into_rgb8()));
        }
        let Some((_, original)) = &source else {
            continue;
        };
        let bytes = std::fs::metadata(&path)?.len();
        let output = image::open(&path)
            .with_context(|| format!("{}", path.display()))?
            .into_rgb8();
        let (width, height) = output.dimensions();
        let reference = image::imageops::resize(original, width, height, FilterType::Lanczos3);
        let ssim = ssim_luma(&reference, &output)?;
        let (butteraugli_max, butteraugli_3norm) = butteraugli(&reference, &output)?;
        eprintln!(
            "{case} {label}: {bytes} bytes, SSIM {ssim:.4}, butteraugli {butteraugli_max:.3} / {butteraugli_3norm:.3}"
        );
        scores.push(json!({
            "case": case,
            "output": label,
            "bytes": bytes,
            "width": width,
            "height": height,
            "ssim": ssim,
            "butteraugli_max": butteraugli_max,
            "butteraugli_3norm": butteraugli_3norm,
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "scores": scores }))?
    );
    Ok(())
}

fn ssim_luma(reference: &RgbImage, output: &RgbImage) -> anyhow::Result<f64> {
    let luma = |image: &RgbImage| DynamicImage::ImageRgb8(image.clone()).into_luma8();
    let result = image_compare::gray_similarity_structure(
        &image_compare::Algorithm::MSSIMSimple,
        &luma(reference),
        &luma(output),
    )?;
    Ok(result.score)
}

fn butteraugli(reference: &RgbImage, output: &RgbImage) -> anyhow::Result<(f64, f64)> {
    let pixels = |image: &RgbImage| {
        let data = image
            .pixels()
            .map(|p| butteraugli::RGB8::new(p[0], p[1], p[2]))
            .collect::<Vec<_>>();
        butteraugli::Img::new(data, image.width() as usize, image.height() as usize)
    };
    let (reference, output) = (pixels(reference), pixels(output));
    let result = butteraugli::butteraugli(
        reference.as_ref(),
        output.as_ref(),
        &butteraugli::ButteraugliParams::default(),
    )
    .map_err(|e| anyhow::anyhow!("butteraugli: {e:?}"))?;
    Ok((result.score, result.pnorm_3))
}
