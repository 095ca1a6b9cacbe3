//! The results table: figure, ours, baseline, ratio, target, PASS/MISS (and the same as JSON).

use serde_json::{Value, json};

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// ours / baseline ≥ this.
    RatioAtLeast(f64),
    /// ours / baseline ≤ this (a latency at most so many times its baseline's).
    RatioAtMost(f64),
    /// ours ≤ this (same unit as ours).
    AtMost(f64),
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub ours: f64,
    pub ours_text: String,
    pub baseline: Option<f64>,
    pub baseline_text: Option<String>,
    pub unit: &'static str,
    pub target: Option<Target>,
    /// More numbers for the JSON output.
    pub extra: Value,
}

impl Figure {
    /// A rate (events/s, rows/s…) compared with a baseline rate.
    pub fn rate(name: impl Into<String>, ours: f64, baseline: Option<(f64, &str)>) -> Figure {
        Figure {
            name: name.into(),
            ours,
            ours_text: format!("{}/s", human(ours)),
            baseline: baseline.map(|(b, _)| b),
            baseline_text: baseline.map(|(b, what)| format!("{}/s {what}", human(b))),
            unit: "per_second",
            target: None,
            extra: Value::Null,
        }
    }

    /// Latency percentiles in milliseconds (p50 / p99), with the baseline's if there is one.
    pub fn latency(
        name: impl Into<String>,
        ours: Percentiles,
        baseline: Option<(Percentiles, &str)>,
    ) -> Figure {
        Figure {
            name: name.into(),
            ours: ours.p99,
            ours_text: ours.to_string(),
            baseline: baseline.map(|(b, _)| b.p99),
            baseline_text: baseline.map(|(b, what)| format!("{b} {what}")),
            unit: "ms_p99",
            target: None,
            extra: json!({
                "p50_ms": ours.p50,
                "p99_ms": ours.p99,
                "baseline_p50_ms": baseline.map(|(b, _)| b.p50),
                "baseline_p99_ms": baseline.map(|(b, _)| b.p99),
            }),
        }
    }

    /// A plain value with its unit.
    pub fn value(name: impl Into<String>, ours: f64, text: String, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            ours,
            ours_text: text,
            baseline: None,
            baseline_text: None,
            unit,
            target: None,
            extra: Value::Null,
        }
    }

    pub fn target(mut self, target: Target) -> Figure {
        self.target = Some(target);
        self
    }

    /// ours / baseline, for rates, and for latencies (of their p99s) that have a target; the
    /// baseline of any other latency is there to compare by eye.
    pub fn ratio(&self) -> Option<f64> {
        let shown = match self.unit {
            "per_second" => true,
            "ms_p99" => self.target.is_some(),
            _ => false,
        };
        if !shown {
            return None;
        }
        self.baseline
            .filter(|b| *b > 0.0)
            .map(|baseline| self.ours / baseline)
    }

    pub fn pass(&self) -> Option<bool> {
        match self.target? {
            Target::RatioAtLeast(min) => self.ratio().map(|r| r >= min),
            Target::RatioAtMost(max) => self.ratio().map(|r| r <= max),
            Target::AtMost(max) => Some(self.ours <= max),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Some(Target::RatioAtLeast(min)) => format!("ratio ≥ {min}"),
            Some(Target::RatioAtMost(max)) => format!("ratio ≤ {max}"),
            Some(Target::AtMost(max)) => format!("≤ {}", trim(max)),
            None => String::new(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "figure": self.name.trim(),
            "ours": self.ours,
            "ours_text": self.ours_text,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_text": self.baseline_text,
            "ratio": self.ratio(),
            "target": self.target.map(|_| self.target_text()),
            "pass": self.pass(),
            "details": self.extra,
        })
    }
}

/// p50 and p99, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn from_micros(histogram: &hdrhistogram::Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: histogram.value_at_quantile(0.50) as f64 / 1000.0,
            p99: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p50 {} / p99 {} ms", ms(self.p50), ms(self.p99))
    }
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// 12345.6 → "12.3k", 1234567 → "1.23M".
pub fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 1e3 {
        format!("{:.2}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

/// Renders the figures as an aligned text table.
pub fn table(title: &str, figures: &[Figure]) -> String {
    let header = ["Figure", "Ours", "Baseline", "Ratio", "Target", "Result"];
    let rows: Vec<[String; 6]> = figures
        .iter()
        .map(|f| {
            [
                f.name.clone(),
                f.ours_text.clone(),
                f.baseline_text.clone().unwrap_or_default(),
                f.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
                f.target_text(),
                match f.pass() {
                    Some(true) => "PASS".into(),
                    Some(false) => "MISS".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let pad = width - cell.chars().count();
            // Numbers right-aligned, text left-aligned.
            if i == 3 {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = format!("\n{title}\n");
    out.push_str(&line(&header.map(String::from)));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// The figures as a JSON document with the run's context.
pub fn to_json(benchmark: &str, context: Value, figures: &[Figure]) -> Value {
    json!({
        "benchmark": benchmark,
        "context": context,
        "figures": figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
        "all_targets_met": figures.iter().all(|f| f.pass() != Some(false)),
    })
}

/// Prints the table (to stdout, or to stderr with the JSON on stdout when `json`).
pub fn print(benchmark: &str, context: Value, figures: &[Figure], json: bool) {
    let text = table(
        &format!("bench {benchmark}  ({})", context_line(&context)),
        figures,
    );
    if json {
        eprint!("{text}");
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(benchmark, context, figures)).unwrap_or_default()
        );
    } else {
        print!("{text}");
    }
}

fn context_line(context: &Value) -> String {
    context
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_targets_pass_and_miss() {
        let f = Figure::rate("x", 8.0, Some((10.0, "pgbench"))).target(Target::RatioAtLeast(0.7));
        assert_eq!(f.pass(), Some(true));
        let f = Figure::rate("x", 6.0, Some((10.0, "pgbench"))).target(Target::RatioAtLeast(0.7));
        assert_eq!(f.pass(), Some(false));
        let f = Figure::value("mem", 250.0, "250 MB".into(), "MB").target(Target::AtMost(200.0));
        assert_eq!(f.pass(), Some(false));
        assert_eq!(Figure::rate("x", 1.0, None).pass(), None);
    }

    #[test]
    fn latency_ratios_are_of_p99s_and_shown_with_a_target() {
        let ours = Percentiles { p50: 2.0, p99: 9.0 };
        let pgbench = Percentiles { p50: 1.0, p99: 4.0 };
        let f = Figure::latency("l", ours, Some((pgbench, "pgbench")));
        assert_eq!(f.ratio(), None);
        let f = f.target(Target::RatioAtMost(3.0));
        assert_eq!(f.ratio(), Some(2.25));
        assert_eq!(f.pass(), Some(true));
        let f = Figure::latency("l", ours, Some((pgbench, "pgbench"))).target(Target::AtMost(5.0));
        assert_eq!(f.ratio(), Some(2.25));
        assert_eq!(f.pass(), Some(false));
    }

    #[test]
    fn table_aligns_columns() {
        let table = table(
            "t",
            &[
                Figure::rate("append", 12_345.0, Some((10_000.0, "pgbench")))
                    .target(Target::RatioAtLeast(0.7)),
            ],
        );
        assert!(table.contains("12.3k/s"), "{table}");
        assert!(table.contains("1.23"), "{table}");
        assert!(table.contains("PASS"), "{table}");
    }
}
