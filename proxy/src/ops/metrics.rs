//! `GET /metrics`: every counter in the Prometheus text format (0.0.4), encoded by
//! `prometheus-client`. The values stay where they are counted (usage statistics, image
//! counters, config status); one collector asks each of them to encode itself at scrape time.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::bookkeeping::accounting::Accounting;
use crate::rewrite::images::ImageService;
use crate::snapshot::Shared;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(
        accounting: Arc<Accounting>,
        images: Arc<ImageService>,
        shared: Arc<Shared>,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sources {
            accounting,
            images,
            shared,
        }));
        Metrics { registry }
    }

    /// The text a scrape receives.
    pub fn render(&self) -> Result<String, fmt::Error> {
        render(&self.registry)
    }
}

fn render(registry: &Registry) -> Result<String, fmt::Error> {
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    Ok(text)
}

struct Sources {
    accounting: Arc<Accounting>,
    images: Arc<ImageService>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sources")
    }
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.accounting.stats.encode_metrics(&mut encoder)?;
        self.accounting.history.encode_metrics(&mut encoder)?;
        self.images.stats().encode_metrics(&mut encoder)?;
        crate::upstream::pool::encode_metrics(&self.shared.pools.stats(), &mut encoder)?;
        let snapshot = self.shared.snapshot.load();
        self.accounting
            .limiter
            .encode_metrics(&mut encoder, &snapshot.config.limits)?;
        let status = self.shared.status();
        let generation = encoder.encode_descriptor(
            "gateway_config_generation",
            "Configs applied since start",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(status.generation).encode(generation)?;
        let rejected = encoder.encode_descriptor(
            "gateway_config_rejected",
            "1 while the config file on disk is invalid and an older one serves",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(u64::from(status.rejected.is_some())).encode(rejected)
    }
}

/// Starts a counter family: `name` without `_total`, which the encoder appends.
pub fn counter<'e>(
    encoder: &'e mut DescriptorEncoder,
    name: &'e str,
    help: &str,
) -> Result<MetricEncoder<'e>, fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Counter)
}

/// One sample of a labelled counter family.
pub fn labelled(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: impl prometheus_client::encoding::EncodeCounterValue,
) -> fmt::Result {
    ConstCounter::new(value).encode(family.encode_family(labels)?)
}

/// What `encode` writes, rendered as a scrape would render it.
#[cfg(test)]
pub(crate) fn render_with(
    encode: impl Fn(&mut DescriptorEncoder) -> fmt::Result + Send + Sync + 'static,
) -> String {
    struct One<F>(F);
    impl<F> fmt::Debug for One<F> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("One")
        }
    }
    impl<F: Fn(&mut DescriptorEncoder) -> fmt::Result + Send + Sync + 'static> Collector for One<F> {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            (self.0)(&mut encoder)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(One(encode)));
    render(&registry).unwrap_or_else(|e| panic!("encoding failed: {e}"))
}
