//! Numbers as `top` shows them: short enough for a table column, the same width from one
//! frame to the next.

/// `x` with an SI suffix, in at most 5 characters: `0`, `0.4`, `12`, `999`, `1.23k`,
/// `12.3k`, `123k`, `4.56M`. Negative values show as `0`.
pub fn si(x: f64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let x = if x.is_finite() { x.max(0.0) } else { 0.0 };
    for (scale, unit) in UNITS {
        if x >= scale * 0.9995 {
            let v = x / scale;
            return if v < 9.995 {
                format!("{v:.2}{unit}")
            } else if v < 99.95 {
                format!("{v:.1}{unit}")
            } else {
                format!("{v:.0}{unit}")
            };
        }
    }
    if x < 9.95 && x.fract() != 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// A count: exact below 10,000, then [`si`].
pub fn count(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else {
        si(n as f64)
    }
}

/// A rate per second, or `-` when there is none yet (the first frame).
pub fn rate(per_s: Option<f64>) -> String {
    per_s.map_or_else(|| "-".to_string(), si)
}

/// A percentage with no decimals; `<1%` for a small one that is not zero.
pub fn percent(pct: f64) -> String {
    if pct > 0.0 && pct < 0.5 {
        "<1%".to_string()
    } else {
        format!("{:.0}%", pct.clamp(0.0, 999.0))
    }
}

/// A span of time for people, in at most 6 characters: `850ms`, `12.3s`, `3m12s`, `2h03m`,
/// `4d07h`; `>99d` beyond.
pub fn span(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let s = ns / 1_000_000_000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{:.1}s", ns as f64 / 1e9),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        86_400..8_640_000 => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
        _ => ">99d".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_keeps_to_five_characters() {
        let cases = [
            (0.0, "0"),
            (0.4, "0.4"),
            (7.0, "7"),
            (12.0, "12"),
            (999.0, "999"),
            (999.6, "1.00k"),
            (1_234.0, "1.23k"),
            (12_345.0, "12.3k"),
            (123_456.0, "123k"),
            (999_999.0, "1.00M"),
            (4_560_000.0, "4.56M"),
            (-3.0, "0"),
            (f64::NAN, "0"),
        ];
        for (x, want) in cases {
            assert_eq!(si(x), want, "{x}");
            assert!(si(x).len() <= 5);
        }
    }

    #[test]
    fn counts_are_exact_while_short() {
        assert_eq!(count(9_999), "9999");
        assert_eq!(count(12_345), "12.3k");
    }

    #[test]
    fn a_missing_rate_is_a_dash() {
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(1500.0)), "1.50k");
    }

    #[test]
    fn percents_round_and_flag_small_ones() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.2), "<1%");
        assert_eq!(percent(42.4), "42%");
        assert_eq!(percent(100.0), "100%");
    }

    #[test]
    fn spans_pick_their_unit() {
        assert_eq!(span(850_000_000), "850ms");
        assert_eq!(span(12_300_000_000), "12.3s");
        assert_eq!(span(192_000_000_000), "3m12s");
        assert_eq!(span(7_380_000_000_000), "2h03m");
        assert_eq!(span(370_800_000_000_000), "4d07h");
        assert_eq!(span(u64::MAX), ">99d");
    }
}
