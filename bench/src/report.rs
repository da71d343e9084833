//! The bench report: one table on stdout, the same figures as JSON in
//! `target/bench/report.json`, each with its unit, its reference and the ratio.

use std::{fs, path::Path};

use anyhow::Context as _;
use serde::Serialize;

/// One measured figure, compared with a reference measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured, e.g. "IPv4 classified packet, full table, random sources".
    pub name: String,
    pub value: f64,
    /// "ns/packet", "Mpps", "s", "MiB", ...
    pub unit: String,
    /// The reference's name and value, when there is one.
    pub reference: Option<String>,
    pub reference_value: Option<f64>,
    /// `value / reference_value`.
    pub ratio: Option<f64>,
    /// The goal as text, e.g. "≤ 0.25 × stock LPM", and whether this run met it.
    pub goal: Option<String>,
    pub met: Option<bool>,
    /// Where the goal is missed: by how much, e.g. "52% over the bound" (the figure is 1.52
    /// times what the goal allows) or "28% short of the bound" (it is 0.72 of what the goal
    /// asks).
    pub missed_by: Option<String>,
    /// Why, where a goal is missed or a figure needs explaining.
    pub note: Option<String>,
    /// For a cost measured as a difference: how far its value may be from the true one
    /// (half the width of a 95% confidence interval), and whether the value is no larger
    /// than that, so that the cost cannot be told from none. The table then prints
    /// "≤ noise (±x)" instead of the value, which may be negative.
    pub noise: Option<f64>,
    pub within_noise: Option<bool>,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            reference: None,
            reference_value: None,
            ratio: None,
            goal: None,
            met: None,
            missed_by: None,
            note: None,
            noise: None,
            within_noise: None,
        }
    }

    /// Records the value's noise (see [`Figure::noise`]).
    pub fn noise(mut self, noise: f64) -> Figure {
        self.noise = Some(noise);
        self.within_noise = Some(self.value <= noise);
        self
    }

    /// Compares with a reference of the same unit.
    pub fn against(mut self, reference: impl Into<String>, value: f64) -> Figure {
        self.reference = Some(reference.into());
        self.reference_value = Some(value);
        self.ratio = (value != 0.0).then(|| self.value / value);
        self
    }

    /// Replaces the ratio with one measured otherwise: the median of per-round ratios of
    /// runs made back to back, which machine noise between rounds does not skew.
    pub fn paired_ratio(mut self, ratio: f64) -> Figure {
        self.ratio = Some(ratio);
        self
    }

    /// A goal on the ratio: met when `ratio <= at_most` (or `>= at_least` for throughput).
    pub fn goal_ratio_at_most(mut self, at_most: f64) -> Figure {
        self.goal = Some(format!("≤ {at_most} ×"));
        self.met = self.ratio.map(|r| r <= at_most);
        if let (Some(false), Some(r)) = (self.met, self.ratio) {
            self.missed_by = Some(over(r / at_most));
        }
        self
    }

    pub fn goal_ratio_at_least(mut self, at_least: f64) -> Figure {
        self.goal = Some(format!("≥ {at_least} ×"));
        self.met = self.ratio.map(|r| r >= at_least);
        if let (Some(false), Some(r)) = (self.met, self.ratio) {
            self.missed_by = Some(short(r / at_least));
        }
        self
    }

    /// A goal on the value itself.
    pub fn goal_value_at_most(mut self, at_most: f64) -> Figure {
        self.goal = Some(format!("≤ {at_most} {}", self.unit));
        self.met = Some(self.value <= at_most);
        if self.value > at_most {
            self.missed_by = Some(over(self.value / at_most));
        }
        self
    }

    pub fn goal_value_at_least(mut self, at_least: f64) -> Figure {
        self.goal = Some(format!("≥ {at_least} {}", self.unit));
        self.met = Some(self.value >= at_least);
        if self.value < at_least {
            self.missed_by = Some(short(self.value / at_least));
        }
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// "full" or "smoke".
    pub mode: String,
    pub figures: Vec<Figure>,
    /// What a reader needs to judge the figures: data used, noise, why goals are missed
    /// and what would close them.
    pub notes: Vec<String>,
}

impl Report {
    pub fn push(&mut self, figure: Figure) {
        println!("{}", row(&figure));
        if let Some(note) = &figure.note {
            println!("    {note}");
        }
        self.figures.push(figure);
    }

    /// A note on the whole run, printed at once and kept for the closing notes.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("note: {note}");
        self.notes.push(note);
    }

    /// The closing notes, once more, after the table.
    pub fn print_notes(&self) {
        if !self.notes.is_empty() {
            println!("\nnotes:");
            for note in &self.notes {
                println!("  - {note}");
            }
        }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        fs::write(path, json).with_context(|| format!("writing {}", path.display()))
    }
}

fn row(f: &Figure) -> String {
    let reference = match (&f.reference, f.reference_value, f.ratio) {
        (Some(name), Some(v), Some(r)) => format!("{r:>7.3} × {name} ({v:.3})"),
        _ => String::new(),
    };
    let goal = match (&f.goal, f.met, &f.missed_by) {
        (Some(goal), Some(true), _) => format!("goal {goal}: met"),
        (Some(goal), Some(false), Some(by)) => format!("goal {goal}: MISSED ({by})"),
        (Some(goal), Some(false), None) => format!("goal {goal}: MISSED"),
        _ => String::new(),
    };
    let value = match (f.within_noise, f.noise) {
        (Some(true), Some(noise)) => format!(
            "{:>12} {:<10}",
            "≤ noise",
            format!("(±{noise:.1} {})", f.unit)
        ),
        _ => format!("{:>12.3} {:<10}", f.value, f.unit),
    };
    format!("{:<62} {value} {reference:<48} {goal}", f.name)
}

/// A share of a bound as a percentage: "under 0.1%" for what one decimal would print as
/// 0.0, "0.4%" for a miss by a hair, "28%".
fn percent(share: f64) -> String {
    let pct = share * 100.0;
    if pct < 0.05 {
        "under 0.1%".to_string()
    } else if pct < 10.0 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.0}%")
    }
}

/// A figure `factor` times what its bound allows (above 1).
fn over(factor: f64) -> String {
    format!("{} over the bound", percent(factor - 1.0))
}

/// A figure `share` (below 1) of the bound it must reach.
fn short(share: f64) -> String {
    format!("{} short of the bound", percent(1.0 - share))
}

/// The median of a set of measurements.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Half the width of a distribution-free 95% confidence interval of the median: the
/// order statistics `n/2 ∓ 0.98 √n` apart (the sign test's interval), so that a step
/// whose per-round differences straddle zero reads as noise, whatever their distribution.
/// With fewer than 6 values no such interval exists, and the whole range is taken.
pub fn median_noise(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n < 6 {
        return (values[n - 1] - values[0]) / 2.0;
    }
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    (values[hi] - values[lo]) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_goals() {
        let f = Figure::new("x", 50.0, "ns")
            .against("ref", 200.0)
            .goal_ratio_at_most(0.25);
        assert_eq!(f.ratio, Some(0.25));
        assert_eq!(f.met, Some(true));
        let f = Figure::new("y", 2.0, "Mpps")
            .against("ref", 4.0)
            .goal_ratio_at_least(0.9);
        assert_eq!(f.met, Some(false));
        assert_eq!(f.missed_by.as_deref(), Some("44% short of the bound"));
        let f = Figure::new("z", 60.0, "ns")
            .against("ref", 100.0)
            .goal_ratio_at_most(0.3);
        assert_eq!(f.missed_by.as_deref(), Some("100% over the bound"));
        // A miss by a hair says so rather than "1.00 × the bound".
        let f = Figure::new("s", 1.305, "×").goal_value_at_most(1.3);
        assert_eq!(f.missed_by.as_deref(), Some("0.4% over the bound"));
        // A figure printed as the bound itself (1.300) still says it is over it.
        let f = Figure::new("t", 1.3004, "×").goal_value_at_most(1.3);
        assert_eq!(f.missed_by.as_deref(), Some("under 0.1% over the bound"));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        // A cost no larger than its noise, negative or not, is printed as such.
        for value in [-1.5, 0.0, 2.9] {
            let f = Figure::new("step", value, "ns/packet").noise(3.0);
            assert_eq!(f.within_noise, Some(true));
            let printed = row(&f);
            assert!(printed.contains("≤ noise (±3.0 ns/packet)"), "{printed}");
            assert!(!printed.contains(&format!("{value:.3}")), "{printed}");
        }
        // Rounds straddling zero are noise; a clear cost is not.
        let straddling: Vec<f64> = (0..31).map(|i| f64::from(i % 7) - 3.0).collect();
        let noise = median_noise(straddling.clone());
        assert!(noise > 0.0 && median(straddling) <= noise, "{noise}");
        let clear: Vec<f64> = (0..31).map(|i| 20.0 + f64::from(i % 3)).collect();
        assert!(median_noise(clear.clone()) < median(clear));
        assert_eq!(
            median_noise(vec![1.0, 5.0]),
            2.0,
            "a few values: half their range"
        );
        let f = Figure::new("step", 7.25, "ns/packet").noise(3.0);
        assert_eq!(f.within_noise, Some(false));
        assert!(row(&f).contains("7.250 ns/packet"), "{}", row(&f));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
