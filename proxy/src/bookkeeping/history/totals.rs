//! The all-time latency and time-to-first-byte histograms per model that `/metrics` serves as
//! `gateway_request_duration_seconds` and `gateway_request_ttfb_seconds`, with the history's
//! bucket bounds. Kept beside the history (and written with its recent part), so they survive
//! restarts like the other counters.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::codec::{Reader, Writer};
use super::frame::{Hists, IdMaps, Measure};
use super::histogram::{BOUNDS_US, DecodeError, Histogram};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelTotals {
    pub hists: Hists,
    pub latency_sum_us: u64,
    pub ttfb_sum_us: u64,
}

impl ModelTotals {
    pub fn count(&mut self, m: &Measure) {
        self.hists.latency.add_us(m.latency_us);
        self.latency_sum_us = self.latency_sum_us.saturating_add(m.latency_us);
        if let Some(ttfb) = m.ttfb_us {
            self.hists.ttfb.add_us(ttfb);
            self.ttfb_sum_us = self.ttfb_sum_us.saturating_add(ttfb);
        }
    }

    pub fn add(&mut self, other: &ModelTotals) {
        self.hists.merge(&other.hists);
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.ttfb_sum_us = self.ttfb_sum_us.saturating_add(other.ttfb_sum_us);
    }

    pub fn encode(&self, out: &mut Writer) {
        out.uint(self.latency_sum_us);
        out.uint(self.ttfb_sum_us);
        self.hists.encode(out);
    }

    pub fn decode(input: &mut Reader<'_>, maps: &IdMaps) -> Result<ModelTotals, DecodeError> {
        let mut totals = ModelTotals {
            latency_sum_us: input.uint()?,
            ttfb_sum_us: input.uint()?,
            ..ModelTotals::default()
        };
        totals.hists.add_encoded(input, maps)?;
        Ok(totals)
    }
}

/// Writes both histogram families, one sample set per model (`totals` and `model_names` are
/// indexed by model id).
pub fn encode_metrics(
    encoder: &mut DescriptorEncoder,
    totals: &[Option<Box<ModelTotals>>],
    model_names: &[Arc<str>],
) -> fmt::Result {
    let models = || {
        totals.iter().zip(model_names).filter_map(|(t, name)| {
            let t = t.as_deref()?;
            (!name.is_empty()).then_some((&**name, t))
        })
    };
    let mut duration = encoder.encode_descriptor(
        "gateway_request_duration_seconds",
        "Request latency until the response ended",
        None,
        MetricType::Histogram,
    )?;
    for (name, t) in models() {
        encode_histogram(&mut duration, name, &t.hists.latency, t.latency_sum_us)?;
    }
    let mut ttfb = encoder.encode_descriptor(
        "gateway_request_ttfb_seconds",
        "Time until the upstream's response head, of requests it answered",
        None,
        MetricType::Histogram,
    )?;
    for (name, t) in models() {
        encode_histogram(&mut ttfb, name, &t.hists.ttfb, t.ttfb_sum_us)?;
    }
    Ok(())
}

fn encode_histogram(
    family: &mut prometheus_client::encoding::MetricEncoder<'_>,
    model: &str,
    histogram: &Histogram,
    sum_us: u64,
) -> fmt::Result {
    // Per-bucket counts: the encoder adds them up into the cumulative `le` buckets.
    let buckets: Vec<(f64, u64)> = BOUNDS_US
        .iter()
        .map(|bound| *bound as f64 / 1e6)
        .chain([f64::INFINITY])
        .zip(histogram.counts().iter().copied())
        .collect();
    family
        .encode_family(&[("model", model)])?
        .encode_histogram::<NoLabelSet>(sum_us as f64 / 1e6, histogram.total(), &buckets, None)
}
