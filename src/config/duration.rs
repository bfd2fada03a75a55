//! Durations as operators write them: `250ms`, `2s`, `1m`, `1m30s`, `1.5s`.
//!
//! The syntax is Go's `time.ParseDuration` without the sign, so configuration
//! files written for the original Go daemon keep working.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses `text` as a non-negative duration; the error says what is wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = |why: &str| format!("invalid duration {text:?}: {why} (write e.g. 250ms, 2s, 1m30s)");
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad("expected a number"));
        }
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        if unit_len == 0 {
            return Err(bad("missing unit"));
        }
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        let (whole, frac) = match num.split_once('.') {
            Some((w, f)) => (w, f),
            None => (num, ""),
        };
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad("malformed number"));
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad("number too large"))?
        };
        let mut ns = whole.checked_mul(unit_ns).ok_or_else(|| bad("too large"))?;
        // Fractions beyond nanosecond precision are truncated, as Go does.
        let mut scale = unit_ns;
        for digit in frac.bytes().take(18) {
            scale /= 10;
            ns += u128::from(digit - b'0') * scale;
        }
        total_ns = total_ns.checked_add(ns).ok_or_else(|| bad("too large"))?;
        rest = after;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| bad("too large"))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// Formats a duration the way the configuration writes it (`1m30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let ms_total = d.as_millis();
    if d.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}us", d.as_micros());
    }
    if ms_total % 1000 != 0 {
        return format!("{ms_total}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// A configuration duration; deserializes from the text syntax above.
///
/// Errors are raised inside the visitor so the YAML parser attaches the value's
/// own line and column to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 250ms, 2s or 1m")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ConfDuration, E> {
                parse_duration(s).map(ConfDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfDuration, E> {
                if v == 0 {
                    Ok(ConfDuration(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "duration {v} has no unit (write e.g. {v}s or {v}ms)"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfDuration, E> {
                Err(E::custom(format!(
                    "duration {v} is negative or has no unit"
                )))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ConfDuration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit (write e.g. {v}s)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn parses_operator_syntax() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        for (input, why) in [
            ("", "empty"),
            ("5", "missing unit"),
            ("5x", "unknown unit"),
            ("s", "expected a number"),
            ("-1s", "expected a number"),
            ("1..2s", "malformed"),
            ("1.2.3s", "malformed"),
            ("99999999999999999999999h", "too large"),
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "2s", "1m", "1m30s", "1h", "1h1m1s", "0s", "1500us"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }
}
