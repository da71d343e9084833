//! The Prometheus text exposition format (version 0.0.4), written by prometheus-client: a
//! scrape's snapshot is a [`Collector`] whose families are constant metrics made from the
//! values read for that scrape, not counters kept in this process. The encoder escapes
//! label values and help text, so an order reference or a meeting name can never break a
//! scrape, and adds `_total` to counter names and `_info` to info names.

use std::fmt;

use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeGaugeValue, EncodeMetric as _, MetricEncoder, prometheus_text,
    },
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::Registry,
};

/// The content type of [`encode`]'s output.
pub use prometheus_text::CONTENT_TYPE;

/// Labels of one sample, in the order they are written.
pub type Labels<'a> = [(&'a str, &'a str)];

/// What writes a scrape's families.
pub trait Families: Send + Sync + 'static {
    fn write(&self, e: &mut DescriptorEncoder<'_>) -> fmt::Result;
}

struct Scrape<F>(F);

impl<F> fmt::Debug for Scrape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl<F: Families> Collector for Scrape<F> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.0.write(&mut encoder)
    }
}

/// The text of one scrape: a registry of one collector, built for it and dropped after.
pub fn encode(families: impl Families) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(families)));
    let mut out = String::new();
    prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The samples of one counter family.
pub struct Counters<'a>(MetricEncoder<'a>);

/// The samples of one gauge family.
pub struct Gauges<'a>(MetricEncoder<'a>);

/// Starts a counter family; `name` comes without `_total`, which the encoder adds.
pub fn counter<'s>(
    e: &'s mut DescriptorEncoder<'_>,
    name: &'static str,
    help: &str,
) -> Result<Counters<'s>, fmt::Error> {
    debug_assert!(!name.ends_with("_total"), "{name}: the encoder adds _total");
    Ok(Counters(e.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?))
}

pub fn gauge<'s>(
    e: &'s mut DescriptorEncoder<'_>,
    name: &'static str,
    help: &str,
) -> Result<Gauges<'s>, fmt::Error> {
    Ok(Gauges(e.encode_descriptor(
        name,
        help,
        None,
        MetricType::Gauge,
    )?))
}

/// An info family of one sample, `name_info{labels} 1`; `name` comes without `_info`.
pub fn info(
    e: &mut DescriptorEncoder<'_>,
    name: &'static str,
    help: &str,
    labels: &Labels<'_>,
) -> fmt::Result {
    debug_assert!(!name.ends_with("_info"), "{name}: the encoder adds _info");
    let info = Info::new(labels.to_vec());
    let metric = e.encode_descriptor(name, help, None, info.metric_type())?;
    info.encode(metric)
}

impl Counters<'_> {
    pub fn sample(&mut self, labels: &Labels<'_>, value: u64) -> Result<&mut Self, fmt::Error> {
        ConstCounter::new(value).encode(self.0.encode_family(&labels)?)?;
        Ok(self)
    }
}

impl Gauges<'_> {
    pub fn sample(
        &mut self,
        labels: &Labels<'_>,
        value: impl EncodeGaugeValue,
    ) -> Result<&mut Self, fmt::Error> {
        ConstGauge::new(value).encode(self.0.encode_family(&labels)?)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Example;

    impl Families for Example {
        fn write(&self, e: &mut DescriptorEncoder<'_>) -> fmt::Result {
            counter(e, "x", "Packets.\nSecond line \\ here")?
                .sample(&[("order", "A \"quoted\" \\ ref\nx"), ("m", "b")], 3)?
                .sample(&[], 4)?;
            gauge(e, "y", "A gauge.")?;
            gauge(e, "z", "Seconds.")?
                .sample(&[], 1.5)?
                .sample(&[("k", "v")], 2u64)?;
            info(e, "w", "Facts.", &[("version", "1.2")])
        }
    }

    #[test]
    fn families_and_escaping() {
        let text = encode(Example).expect("encoded");
        assert_eq!(
            text,
            "# HELP x_total Packets.\\nSecond line \\\\ here\n# TYPE x_total counter\n\
             x_total{order=\"A \\\"quoted\\\" \\\\ ref\\nx\",m=\"b\"} 3\nx_total 4\n\
             # HELP y A gauge.\n# TYPE y gauge\n\
             # HELP z Seconds.\n# TYPE z gauge\nz 1.5\nz{k=\"v\"} 2\n\
             # HELP w_info Facts.\n# TYPE w_info gauge\nw_info{version=\"1.2\"} 1\n"
        );
    }
}
