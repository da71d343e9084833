//! The Prometheus text exposition format (version 0.0.4): each family once, with its HELP
//! and TYPE lines, then its samples; label values and help text escaped as the format
//! requires, so an order reference or a meeting name can never break a scrape.

use std::fmt::{Display, Write as _};

/// The content type of [`Exposition::finish`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// The samples of one family, written as they are added.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    /// Starts a family. Counter names end in `_total`, as the format's conventions ask.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        debug_assert_eq!(
            matches!(kind, Kind::Counter),
            name.ends_with("_total"),
            "{name}: counters and only counters end in _total"
        );
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', r"\\").replace('\n', r"\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaping() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Packets.\nSecond line \\ here")
            .sample(&[("order", "A \"quoted\" \\ ref\nx"), ("m", "b")], 3u64)
            .sample(&[], 4u64);
        e.family("y", Kind::Gauge, "A gauge.");
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total Packets.\\nSecond line \\\\ here\n# TYPE x_total counter\n\
             x_total{order=\"A \\\"quoted\\\" \\\\ ref\\nx\",m=\"b\"} 3\nx_total 4\n\
             # HELP y A gauge.\n# TYPE y gauge\n"
        );
    }
}
