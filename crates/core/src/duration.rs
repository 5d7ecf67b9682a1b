//! Human-readable durations: `200ms`, `1s`, `1.5s`, `2m`, `250us`.
//!
//! A bare number is refused: `--interval 200` is ambiguous (ms? s?) and the wrong guess
//! during a failover costs seconds.

use std::{fmt, str::FromStr, time::Duration};

/// A [`Duration`] that parses from and prints as a human string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HDuration(pub Duration);

impl HDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<HDuration> for Duration {
    fn from(d: HDuration) -> Duration {
        d.0
    }
}

/// The longest duration any hakit setting takes. Nothing hakit waits for is longer, and a
/// bound at parse time keeps every `Instant + Duration` and multiplication later from
/// overflowing (`18000000000000000000s` used to abort the binaries).
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration; the error text names the input and the accepted forms.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad =
        || format!("invalid duration {s:?}: expected a number with a unit, e.g. 200ms, 1s, 1.5s");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let nanos_per_unit: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad());
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let mut nanos = int.checked_mul(nanos_per_unit).ok_or_else(bad)?;
    // Fractional digits beyond nanosecond precision are dropped, not rounded.
    let mut scale = nanos_per_unit;
    for d in frac.chars() {
        scale /= 10;
        let digit = u128::from(d.to_digit(10).ok_or_else(bad)?);
        nanos = nanos.checked_add(digit * scale).ok_or_else(bad)?;
    }
    if nanos > MAX.as_nanos() {
        return Err(format!("invalid duration {s:?}: at most 24h"));
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

impl FromStr for HDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse(s).map(HDuration)
    }
}

impl fmt::Display for HDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.as_nanos();
        if n == 0 {
            f.write_str("0s")
        } else if n % 1_000_000_000 == 0 {
            write!(f, "{}s", n / 1_000_000_000)
        } else if n % 1_000_000 == 0 {
            write!(f, "{}ms", n / 1_000_000)
        } else if n % 1_000 == 0 {
            write!(f, "{}us", n / 1_000)
        } else {
            write!(f, "{n}ns")
        }
    }
}

impl<'de> serde::Deserialize<'de> for HDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse(" 10 ms "), Ok(Duration::from_millis(10)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_durations_beyond_a_day() {
        assert_eq!(parse("24h").unwrap(), MAX);
        for s in [
            "25h",
            "18000000000000000000s",
            "2562047788015216h",
            "86401s",
        ] {
            let e = parse(s).unwrap_err();
            assert!(
                e.contains("at most 24h") || e.contains("invalid duration"),
                "{s}: {e}"
            );
        }
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "",
            "200",
            "ms",
            "1.2.3s",
            "-1s",
            "1x",
            "1e3ms",
            ".s",
            "99999999999999999999999h",
            "1..s",
            "١s",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn round_trips_through_display() {
        for s in ["200ms", "1s", "1500ms", "250us", "7ns", "0s"] {
            let d: HDuration = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
    }
}
