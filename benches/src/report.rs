//! Percentile tables with ratios to the floor.

use hdrhistogram::Histogram;

/// One measured case.
#[derive(Debug)]
pub struct Row {
    /// A stable machine name for the JSON (kebab-case, unique in a run): `floor`, `channel`, ...
    pub id: String,
    /// What was measured, for people.
    pub name: String,
    /// Round-trip times in nanoseconds.
    pub hist: Histogram<u64>,
}

/// A histogram for nanosecond round trips from 1 ns to 10 s, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds")
}

const QUANTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// Prints `rows` as a table of percentiles (ns) and each row's p50 and p99.9 as a multiple of
/// `floor`'s.
pub fn print_table(rows: &[Row], floor: &Row) {
    print!("{:<26}", "case (round trip, ns)");
    for (q, _) in QUANTILES {
        print!("{q:>9}");
    }
    println!("{:>9}{:>11}{:>13}", "max", "p50/floor", "p99.9/floor");
    let f50 = floor.hist.value_at_quantile(0.5).max(1) as f64;
    let f999 = floor.hist.value_at_quantile(0.999).max(1) as f64;
    for row in rows {
        print!("{:<26}", row.name);
        for (_, q) in QUANTILES {
            print!("{:>9}", row.hist.value_at_quantile(q));
        }
        println!(
            "{:>9}{:>10.2}x{:>12.2}x",
            row.hist.max(),
            row.hist.value_at_quantile(0.5) as f64 / f50,
            row.hist.value_at_quantile(0.999) as f64 / f999
        );
    }
}

/// The machine, for the header of every report: core count and CPU model.
pub fn machine() -> (usize, String) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (cores, cpu)
}
