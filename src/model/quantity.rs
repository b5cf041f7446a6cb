//! Typed quantities used in experiment files: durations ("250ms"), rates ("200/s"),
//! percentages ("99.5%"), byte sizes ("64Mi") and byte rates ("16Mi/s").
//!
//! Every quantity is written as a string with a unit. Bare numbers are rejected so that
//! nobody has to guess whether `timeout: 5` means seconds or milliseconds.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration as StdDuration;

macro_rules! string_quantity {
    ($ty:ident, $pattern:expr, $desc:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $desc,
                })
            }
        }
    };
}

/// A duration written with a unit: `250ms`, `1.5s`, `2m`, `1h`, `100us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn from_millis(ms: u64) -> Self {
        Duration(StdDuration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(StdDuration::from_secs(s))
    }
    pub fn as_std(self) -> StdDuration {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0.as_secs_f64() * 1000.0
    }
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n: f64 = s[..end].parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n, s[end..].trim()))
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {s:?}: expected a number with a unit (us, ms, s, m, h), e.g. \"250ms\" or \"1.5s\"")
        };
        // One grammar with the CRD's pattern (`^[0-9]+(\.[0-9]+)?(us|µs|ms|s|m|min|h)$`):
        // no spaces, digits on both sides of a point, so `kubectl apply` and `murphy
        // validate` never disagree on a duration.
        let digits_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let number = &s[..digits_end];
        let well_formed = match number.split_once('.') {
            Some((a, b)) => {
                !a.is_empty()
                    && !b.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit())
            }
            None => !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()),
        };
        if !well_formed || s[digits_end..].chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (n, unit) = split_number(s).ok_or_else(bad)?;
        let secs = match unit {
            "us" | "µs" => n / 1_000_000.0,
            "ms" => n / 1000.0,
            "s" => n,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        if secs > 31_536_000.0 {
            return Err(format!("invalid duration {s:?}: longer than a year"));
        }
        Ok(Duration(StdDuration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_micros();
        if us == 0 {
            write!(f, "0s")
        } else if us.is_multiple_of(3_600_000_000) {
            write!(f, "{}h", us / 3_600_000_000)
        } else if us.is_multiple_of(60_000_000) {
            write!(f, "{}m", us / 60_000_000)
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

string_quantity!(
    Duration,
    r"^[0-9]+(\.[0-9]+)?(us|µs|ms|s|m|min|h)$",
    "A duration with a unit, e.g. \"250ms\", \"1.5s\", \"2m\"."
);

/// A rate of events: `200/s`, `30/m`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Rate {
    pub per_second: f64,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid rate {s:?}: expected \"N/s\", \"N/m\" or \"N/h\", e.g. \"200/s\"");
        let (num, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        if !n.is_finite() || n <= 0.0 {
            return Err(bad());
        }
        let per_second = match unit.trim() {
            "s" => n,
            "m" | "min" => n / 60.0,
            "h" => n / 3600.0,
            _ => return Err(bad()),
        };
        Ok(Rate { per_second })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_second)
    }
}

string_quantity!(
    Rate,
    r"^[0-9]+(\.[0-9]+)?/(s|m|min|h)$",
    "A rate, e.g. \"200/s\"."
);

/// A percentage between 0 and 100: `99%`, `99.95%`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Percent(pub f64);

impl Percent {
    pub fn ratio(self) -> f64 {
        self.0 / 100.0
    }
}

impl std::str::FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid percentage {s:?}: expected a number from 0 to 100 followed by %, e.g. \"99.5%\"")
        };
        let num = s.trim().strip_suffix('%').ok_or_else(bad)?;
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&n) {
            return Err(bad());
        }
        Ok(Percent(n))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

string_quantity!(
    Percent,
    r"^[0-9]+(\.[0-9]+)?%$",
    "A percentage, e.g. \"99.5%\"."
);

/// A size in bytes: `512Ki`, `64Mi`, `1Gi`, `100M`, `4096B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

fn parse_bytes(s: &str) -> Option<u64> {
    let (n, unit) = split_number(s.trim())?;
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (1.0..1e15).contains(&v).then_some(v as u64)
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_bytes(s).map(ByteSize).ok_or_else(|| {
            format!("invalid size {s:?}: expected a number with a unit (B, K, M, G, Ki, Mi, Gi), e.g. \"64Mi\"")
        })
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b.is_multiple_of(1 << 30) {
            write!(f, "{}Gi", b >> 30)
        } else if b.is_multiple_of(1 << 20) {
            write!(f, "{}Mi", b >> 20)
        } else if b.is_multiple_of(1 << 10) {
            write!(f, "{}Ki", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

string_quantity!(
    ByteSize,
    r"^[0-9]+(\.[0-9]+)?(B|K|M|G|Ki|Mi|Gi|KB|MB|GB|KiB|MiB|GiB)?$",
    "A size in bytes, e.g. \"64Mi\"."
);

/// A byte rate: `16Mi/s`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct ByteRate {
    pub bytes_per_second: f64,
}

impl std::str::FromStr for ByteRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid byte rate {s:?}: expected a size per second, e.g. \"16Mi/s\"");
        let (size, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        // Zero is a rate (a stall), though not a size.
        let zero = size
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<f64>()
            == Ok(0.0);
        let bytes = match parse_bytes(size) {
            Some(b) => b as f64,
            None if zero => 0.0,
            None => return Err(bad()),
        };
        let bytes_per_second = match unit.trim() {
            "s" => bytes,
            "m" | "min" => bytes / 60.0,
            _ => return Err(bad()),
        };
        Ok(ByteRate { bytes_per_second })
    }
}

impl fmt::Display for ByteRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B/s", self.bytes_per_second.round())
    }
}

string_quantity!(
    ByteRate,
    r"^[0-9]+(\.[0-9]+)?(B|K|M|G|Ki|Mi|Gi)?/(s|m|min)$",
    "A byte rate, e.g. \"16Mi/s\"."
);

/// A link rate in bits per second, as network people write it: `10mbit`, `512kbit`, `1gbit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitRate {
    pub bits_per_second: u64,
}

impl std::str::FromStr for BitRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid bit rate {s:?}: expected e.g. \"10mbit\", \"512kbit\", \"1gbit\"");
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mult = match unit {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => return Err(bad()),
        };
        let bits = n * mult;
        if !(bits.is_finite() && bits >= 8.0) {
            return Err(format!("bit rate {s:?} must be at least 8bit"));
        }
        Ok(BitRate {
            bits_per_second: bits.round() as u64,
        })
    }
}

impl fmt::Display for BitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_second;
        if b.is_multiple_of(1_000_000_000) {
            write!(f, "{}gbit", b / 1_000_000_000)
        } else if b.is_multiple_of(1_000_000) {
            write!(f, "{}mbit", b / 1_000_000)
        } else if b.is_multiple_of(1000) {
            write!(f, "{}kbit", b / 1000)
        } else {
            write!(f, "{b}bit")
        }
    }
}

string_quantity!(
    BitRate,
    r"^[0-9]+(\.[0-9]+)?(bit|kbit|mbit|gbit)$",
    "A link rate in bits per second, e.g. \"10mbit\"."
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bit_rates_parse_like_tc() {
        assert_eq!(
            "10mbit".parse::<BitRate>().map(|b| b.bits_per_second),
            Ok(10_000_000)
        );
        assert_eq!(
            "1.5kbit".parse::<BitRate>().map(|b| b.bits_per_second),
            Ok(1500)
        );
        assert!("10".parse::<BitRate>().is_err());
        assert!("10mb".parse::<BitRate>().is_err());
        assert!("0kbit".parse::<BitRate>().is_err());
        assert_eq!(
            "2000kbit".parse::<BitRate>().map(|b| b.to_string()),
            Ok("2mbit".into())
        );
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("250ms".parse::<Duration>(), Ok(Duration::from_millis(250)));
        assert_eq!("1.5s".parse::<Duration>(), Ok(Duration::from_millis(1500)));
        assert_eq!("2m".parse::<Duration>(), Ok(Duration::from_secs(120)));
        assert!("5".parse::<Duration>().is_err(), "bare numbers are refused");
        assert!("5 parsecs".parse::<Duration>().is_err());
        assert!("-1s".parse::<Duration>().is_err());
    }

    /// The parser and the CRD's pattern are one grammar: every string one accepts, the
    /// other does (the CRD once took "100 ms" refused here, or the other way round).
    #[test]
    fn the_duration_parser_and_the_crd_pattern_agree() {
        let pattern = regex::Regex::new(r"^[0-9]+(\.[0-9]+)?(us|µs|ms|s|m|min|h)$").expect("re");
        for s in [
            "100ms", "100 ms", " 1s", "1s ", "1.s", ".5s", "1.5s", "1..5s", "2min", "3h", "7µs",
            "5", "s", "1e3ms", "0s", "10 s", "1.0.0s", "+1s", "1S",
        ] {
            assert_eq!(
                s.parse::<Duration>().is_ok(),
                pattern.is_match(s),
                "{s:?}: parser and pattern disagree"
            );
        }
    }

    #[test]
    fn rates_percent_and_sizes_parse() {
        assert_eq!("200/s".parse::<Rate>().map(|r| r.per_second), Ok(200.0));
        assert_eq!("60/m".parse::<Rate>().map(|r| r.per_second), Ok(1.0));
        assert!("0/s".parse::<Rate>().is_err());
        assert_eq!("99.5%".parse::<Percent>(), Ok(Percent(99.5)));
        assert!("101%".parse::<Percent>().is_err());
        assert!("99".parse::<Percent>().is_err());
        assert_eq!("64Mi".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!(
            "16Mi/s".parse::<ByteRate>().map(|r| r.bytes_per_second),
            Ok(16.0 * 1024.0 * 1024.0)
        );
    }

    proptest! {
        #[test]
        fn duration_display_round_trips(us in 0u64..10_000_000_000) {
            let d = Duration(StdDuration::from_micros(us));
            let back: Duration = d.to_string().parse().expect("display output parses");
            prop_assert_eq!(back, d);
        }

        #[test]
        fn byte_size_display_round_trips(b in 1u64..(1u64 << 40)) {
            let s = ByteSize(b);
            let back: ByteSize = s.to_string().parse().expect("display output parses");
            prop_assert_eq!(back, s);
        }
    }
}
