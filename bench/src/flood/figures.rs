//! The figures the flood part reports: the flood against each baseline, the memory of all
//! maps, and the table load against `nft -f`, each with why where a goal is missed.

use geofence::{geo::GeoTable, kernel::Kernel};

use super::measure::Variant;
use crate::report::{Figure, Report, median};

/// Mpps per variant and round: dropped, and arrived at the receiver's XDP program.
pub(super) struct Rates {
    pub(super) variants: Vec<Variant>,
    pub(super) dropped: Vec<Vec<f64>>,
    pub(super) arrived: Vec<Vec<f64>>,
}

impl Rates {
    fn index(&self, v: Variant) -> Option<usize> {
        self.variants.iter().position(|&x| x == v)
    }

    fn median(&self, v: Variant) -> Option<f64> {
        self.index(v).map(|i| median(self.dropped[i].clone()))
    }

    fn median_arrived(&self, v: Variant) -> Option<f64> {
        self.index(v).map(|i| median(self.arrived[i].clone()))
    }

    /// Per round, geofence ÷ the variant (both measured within seconds of each other): the
    /// median, lowest and highest.
    fn paired(&self, v: Variant) -> Option<(f64, f64, f64)> {
        self.paired_of(Variant::Geofence, v)
    }

    /// Per round, `a` ÷ `b`: the median, lowest and highest.
    fn paired_of(&self, a: Variant, b: Variant) -> Option<(f64, f64, f64)> {
        let g = self.index(a)?;
        let i = self.index(b)?;
        let ratios: Vec<f64> = self.dropped[g]
            .iter()
            .zip(&self.dropped[i])
            .map(|(a, b)| a / b)
            .collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((median(ratios), lo, hi))
    }

    fn ratio_note(&self, v: Variant) -> String {
        self.ratio_note_of(Variant::Geofence, v)
    }

    fn ratio_note_of(&self, a: Variant, b: Variant) -> String {
        self.paired_of(a, b).map_or(String::new(), |(_, lo, hi)| {
            format!(
                "; the ratio is the median of per-round ratios (each round runs every variant \
                 back to back), rounds {lo:.2}..{hi:.2}"
            )
        })
    }
}

/// geofence against the bare drop, nftables and ipset.
pub(super) fn flood(report: &mut Report, rates: &Rates, sources_note: &str, cidrs: usize) {
    let name = "veth flood: blocked UDP dropped by geofence";
    let geofence_mpps = rates.median(Variant::Geofence).expect("always measured");
    let drop_mpps = rates.median(Variant::XdpDrop).expect("always measured");
    // What each frame costs beyond the bare drop, on the core that receives it.
    let over_drop = 1e3 / geofence_mpps - 1e3 / drop_mpps;
    let mut figure = Figure::new(name, geofence_mpps, "Mpps")
        .against(Variant::XdpDrop.name(), drop_mpps)
        .paired_ratio(rates.paired(Variant::XdpDrop).expect("always measured").0)
        .goal_ratio_at_least(0.9);
    let unaccounted = rates.paired_of(Variant::Unaccounted, Variant::XdpDrop);
    let parsed = rates.paired_of(Variant::Parsed, Variant::XdpDrop);
    let why = if figure.met == Some(false) {
        why_below_drop(drop_mpps, over_drop, parsed, unaccounted)
    } else {
        String::new()
    };
    figure = figure.note(format!(
        "{sources_note}{}{why}",
        rates.ratio_note(Variant::XdpDrop)
    ));
    report.push(figure);
    floor_figure(
        report,
        rates,
        Variant::Unaccounted,
        "veth flood: the same, geofence's classification without accounting",
        "the bench object's flood_unaccounted: the relay's parse, session, territory and \
         decision, counting nothing but its drops in one per-CPU counter, as the bare drop \
         counts its own; the floor under any accounting geofence could keep",
    );
    floor_figure(
        report,
        rates,
        Variant::Parsed,
        "veth flood: the same, geofence's header parsing alone",
        "the bench object's flood_parsed: the relay's parse of Ethernet, VLAN tags, IP and \
         UDP/TCP headers, no table consulted, its drops counted as the bare drop counts its \
         own; what reading the headers costs before any lookup",
    );
    for v in [Variant::Nft, Variant::Ipset] {
        match rates.median(v) {
            Some(reference) => {
                let figure = Figure::new(name, geofence_mpps, "Mpps")
                    .against(v.name(), reference)
                    .paired_ratio(rates.paired(v).expect("measured").0)
                    .goal_ratio_at_least(3.0);
                let why = if figure.met == Some(false) {
                    format!(
                        "; missed because geofence's {:.0} ns per frame (bare drop: {:.0} ns) \
                         is {:.2} × the {:.0} ns this baseline spends; a geofence at the \
                         bare-drop floor would be {:.1} × it",
                        1e3 / geofence_mpps,
                        1e3 / drop_mpps,
                        (1e3 / geofence_mpps) / (1e3 / reference),
                        1e3 / reference,
                        drop_mpps / reference
                    )
                } else {
                    String::new()
                };
                report.push(figure.note(format!(
                    "{} prefixes in the netfilter set; frames reaching the stack behind \
                     flood_pass: {:.3} Mpps (median){}{why}",
                    cidrs,
                    rates.median_arrived(v).unwrap_or(0.0),
                    rates.ratio_note(v)
                )));
            }
            None => report.push(
                Figure::new(format!("{name} (vs {})", v.name()), geofence_mpps, "Mpps")
                    .note("baseline skipped: nft, ipset or iptables is not installed"),
            ),
        }
    }
}

/// Why geofence misses 0.9 × the bare drop: its extra nanoseconds per frame split into
/// reading the headers, classifying, and counting, each part's from its paired ratio; and
/// the first part that alone takes more than the goal leaves, if one does.
fn why_below_drop(
    drop_mpps: f64,
    over_drop: f64,
    parsed: Option<(f64, f64, f64)>,
    unaccounted: Option<(f64, f64, f64)>,
) -> String {
    let drop_ns = 1e3 / drop_mpps;
    let leaves = drop_ns * (1.0 / 0.9 - 1.0);
    let cost =
        |ratio: Option<(f64, f64, f64)>| ratio.map(|(r, _, _)| (r, drop_ns * (1.0 / r - 1.0)));
    let (parsed, unaccounted) = (cost(parsed), cost(unaccounted));
    let part = |cost: Option<(f64, f64)>, what: &str| {
        cost.map_or(String::new(), |(r, ns)| {
            format!("{what} {ns:.1} ns ({r:.2} ×); ")
        })
    };
    let verdict = match (parsed, unaccounted) {
        (Some((_, ns)), _) if ns > leaves => {
            "; reading the headers as geofence must (VLAN tags, IP options, fragments, both \
             families) already takes more than the goal leaves, so no cheaper lookup or \
             accounting closes this gap"
        }
        (_, Some((_, ns))) if ns > leaves => {
            "; the classification alone, counting nothing, already takes more than the goal \
             leaves, so no cheaper accounting closes this gap"
        }
        _ => "",
    };
    let split = if parsed.is_none() && unaccounted.is_none() {
        String::new()
    } else {
        format!(
            ". Of those, {}{}the counting the accounting requires (per territory, per rule, \
             distinct sources) the rest",
            part(parsed, "reading the headers takes"),
            part(
                unaccounted,
                "the classification, headers included but nothing counted,"
            ),
        )
    };
    format!(
        "; missed because geofence spends {over_drop:.0} ns per frame more than the bare drop \
         ({drop_ns:.0} ns, generator and veth included, all on one core), where the goal \
         leaves {leaves:.1} ns{split}{verdict}. The per-packet \"data path step\" figures \
         split the same path with warm caches"
    )
}

/// A variant that does part of geofence's work, against the bare drop, with geofence's
/// ratio to it; no goal.
fn floor_figure(report: &mut Report, rates: &Rates, v: Variant, name: &str, what: &str) {
    let (Some(mpps), Some(drop_mpps), Some((ratio, _, _))) = (
        rates.median(v),
        rates.median(Variant::XdpDrop),
        rates.paired_of(v, Variant::XdpDrop),
    ) else {
        return;
    };
    report.push(
        Figure::new(name, mpps, "Mpps")
            .against(Variant::XdpDrop.name(), drop_mpps)
            .paired_ratio(ratio)
            .note(format!(
                "{what} (geofence itself: {:.2} × this){}; no goal",
                rates
                    .paired_of(Variant::Geofence, v)
                    .map_or(f64::NAN, |p| p.0),
                rates.ratio_note_of(v, Variant::XdpDrop)
            )),
    );
}

/// The memory of all maps (both generations full); returns the bytes of the stock LPM
/// reference tries among them.
pub(super) fn memory(report: &mut Report, relay: &Kernel) -> anyhow::Result<u64> {
    let maps = super::memory::maps(relay)?;
    let bytes: u64 = maps.iter().map(|m| m.bytes).sum();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let largest: Vec<String> = maps
        .iter()
        .filter(|m| m.bytes >= 1 << 19)
        .map(|m| format!("{} {:.1}", m.name, mib(m.bytes)))
        .collect();
    let figure = Figure::new(
        "memory of all geofence maps, table in both generations",
        mib(bytes),
        "MiB",
    )
    .goal_value_at_most(128.0);
    // The stock LPM tries kept beside the flattened table (filled on every load while
    // kernel::load_table carries its TRANSITION step).
    let lpm_bytes: u64 = maps
        .iter()
        .filter(|m| m.lpm && m.name.starts_with("GEO"))
        .map(|m| m.bytes)
        .sum();
    let lpm_note = if lpm_bytes > 0 {
        format!(
            "; of these, {:.1} MiB are the stock LPM reference tries (GEO4_A/B, GEO6_A/B), \
             which load_table still fills on every load; without them {:.1} MiB",
            mib(lpm_bytes),
            mib(bytes - lpm_bytes)
        )
    } else {
        String::new()
    };
    let why = if figure.met == Some(false) {
        format!(
            "; missed by {:.1} MiB: every map the relay's object creates is counted; \
             not filling maps the hot path does not read would close it",
            mib(bytes) - 128.0
        )
    } else {
        String::new()
    };
    report.push(figure.note(format!(
        "memlock as the kernel reports it (program maps, pinned maps, inner maps), {} maps; \
         those of 0.5 MiB or more, in MiB: {}{lpm_note}{why}",
        maps.len(),
        largest.join(", ")
    )));
    Ok(lpm_bytes)
}

/// Load times of the whole table: geofence's, and `nft -f`'s where nft is installed.
pub(super) struct Loads {
    /// Wall time per load: parse, then fill and switch.
    pub(super) load: Vec<f64>,
    /// Of which parsing the files.
    pub(super) parse: Vec<f64>,
    pub(super) nft: Option<f64>,
}

pub(super) fn load(report: &mut Report, table: &GeoTable, loads: &Loads, lpm_bytes: u64) {
    let geofence_load = median(loads.load.clone());
    let load_note = format!(
        "{} IPv4 + {} IPv6 prefixes, geofence attached; parse {:.3} s + open the pins, check \
         the attached program's build, fill the idle generation and switch {:.3} s (medians \
         of {} loads); nft gets the same prefixes in two interval sets without their \
         territories (less than geofence stores), by one `nft -f` in a fresh namespace",
        table.v4.len(),
        table.v6.len(),
        median(loads.parse.clone()),
        geofence_load - median(loads.parse.clone()),
        loads.load.len()
    );
    let load_name = "table load + atomic switch (geofence, wall)";
    if let Some(nft) = loads.nft {
        report.push(
            Figure::new(load_name, geofence_load, "s")
                .against("nft -f, same prefixes in two interval sets", nft)
                .goal_ratio_at_most(0.1)
                .note(load_note.clone()),
        );
    }
    let figure = Figure::new(load_name, geofence_load, "s").goal_value_at_most(1.0);
    let why = match (figure.met, lpm_bytes > 0) {
        (Some(false), true) => {
            "; missed: the fill (kernel::load_table) is most of it, see the split above; it \
             still writes the stock LPM reference tries too (they hold entries after the \
             loads), a syscall per prefix"
        }
        (Some(false), false) => "; missed: the fill (kernel::load_table) is most of it",
        _ => "",
    };
    report.push(figure.note(format!("{load_note}{why}")));
}

#[cfg(test)]
mod tests {
    use super::why_below_drop;

    /// A paired ratio with no spread.
    fn ratio(r: f64) -> Option<(f64, f64, f64)> {
        Some((r, r, r))
    }

    #[test]
    fn the_why_names_the_first_part_that_alone_exceeds_what_the_goal_leaves() {
        // A 100 ns bare drop leaves 11.1 ns for 0.9 ×.
        let headers = why_below_drop(10.0, 60.0, ratio(0.85), ratio(0.7));
        assert!(headers.contains("goal leaves 11.1 ns"), "{headers}");
        assert!(
            headers.contains("reading the headers takes 17.6 ns (0.85 ×)"),
            "{headers}"
        );
        assert!(
            headers.contains("nothing counted, 42.9 ns (0.70 ×)"),
            "{headers}"
        );
        assert!(
            headers.contains("no cheaper lookup or accounting"),
            "{headers}"
        );

        let classification = why_below_drop(10.0, 40.0, ratio(0.95), ratio(0.8));
        assert!(
            !classification.contains("no cheaper lookup"),
            "{classification}"
        );
        assert!(
            classification.contains("no cheaper accounting"),
            "{classification}"
        );

        let counting = why_below_drop(10.0, 20.0, ratio(0.99), ratio(0.95));
        assert!(!counting.contains("no cheaper"), "{counting}");
        assert!(counting.contains("the rest. The per-packet"), "{counting}");

        let unmeasured = why_below_drop(10.0, 20.0, None, None);
        assert!(!unmeasured.contains("Of those"), "{unmeasured}");
        assert!(
            unmeasured.contains("leaves 11.1 ns. The per-packet"),
            "{unmeasured}"
        );
    }
}
