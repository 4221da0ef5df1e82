//! CPU and byte quantities as job files write them (`500m`, `0.5`, `1Gi`,
//! `512MB`), each with exactly one canonical spelling so that equal jobs
//! encode to equal bytes (and so get equal ids).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// CPU in thousandths of a core: `500m` and `0.5` are both `MilliCpu(500)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MilliCpu(pub u64);

/// A size in bytes: `1Gi`, `1GiB` and `1073741824` are the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a quantity did not parse; `Display` gives an example to follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantityError {
    #[error("`{0}` is not a CPU amount: write cores (`2`, `0.5`) or millicores (`500m`)")]
    Cpu(String),
    #[error(
        "`{0}` is not a size: write bytes (`1048576`) or a number with a unit \
         (`512Mi`, `1GiB`, `500MB`, `2G`)"
    )]
    Bytes(String),
    #[error("`{0}` is zero: leave the field out to use the node's default")]
    Zero(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

impl FromStr for MilliCpu {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || QuantityError::Cpu(s.to_string());
        let millis = if let Some(m) = s.strip_suffix('m') {
            digits(m).ok_or_else(bad)?
        } else {
            decimal_thousandths(s).ok_or_else(bad)?
        };
        if millis == 0 {
            return Err(QuantityError::Zero(s.to_string()));
        }
        Ok(MilliCpu(millis))
    }
}

impl fmt::Display for MilliCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
];

/// Canonical spellings, largest unit first: the first unit that divides the
/// size exactly names it.
const CANONICAL: &[(&str, u64)] = &[
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
];

impl FromStr for ByteSize {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || QuantityError::Bytes(s.to_string());
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit = unit.trim_start().to_ascii_lowercase();
        let (_, multiplier) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        let thousandths = decimal_thousandths(number).ok_or_else(bad)?;
        let bytes = u128::from(thousandths) * u128::from(*multiplier);
        if bytes % 1000 != 0 {
            // A fraction of a byte: `1.5B`.
            return Err(bad());
        }
        let bytes =
            u64::try_from(bytes / 1000).map_err(|_| QuantityError::TooLarge(s.to_string()))?;
        if bytes == 0 {
            return Err(QuantityError::Zero(s.to_string()));
        }
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in CANONICAL {
            if self.0 >= *size && self.0.is_multiple_of(*size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// `"12"` -> 12; anything but ASCII digits (or too many) -> None.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `"1.5"` -> 1500, `"2"` -> 2000: a decimal with at most three places.
fn decimal_thousandths(s: &str) -> Option<u64> {
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if frac.len() > 3 || (s.contains('.') && frac.is_empty()) {
        return None;
    }
    let whole = if whole.is_empty() && !frac.is_empty() {
        0
    } else {
        digits(whole)?
    };
    let frac_value = if frac.is_empty() {
        0
    } else {
        digits(frac)? * 10u64.pow(3 - frac.len() as u32)
    };
    whole.checked_mul(1000)?.checked_add(frac_value)
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(MilliCpu);
string_serde!(ByteSize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_spellings() {
        for (input, millis, canonical) in [
            ("500m", 500, "500m"),
            ("0.5", 500, "500m"),
            (".25", 250, "250m"),
            ("2", 2000, "2"),
            ("2000m", 2000, "2"),
            ("1.125", 1125, "1125m"),
        ] {
            let c: MilliCpu = input.parse().unwrap();
            assert_eq!(c.0, millis, "{input}");
            assert_eq!(c.to_string(), canonical, "{input}");
        }
        for bad in ["", "m", "-1", "1.2345", "1e3", "two", "1.", "0", "0m", " 1"] {
            assert!(bad.parse::<MilliCpu>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn byte_spellings() {
        for (input, bytes, canonical) in [
            ("1073741824", 1 << 30, "1Gi"),
            ("1Gi", 1 << 30, "1Gi"),
            ("1GiB", 1 << 30, "1Gi"),
            ("1gib", 1 << 30, "1Gi"),
            ("512MB", 512_000_000, "500000Ki"),
            ("1000001", 1_000_001, "1000001"),
            ("1.5Gi", 3 << 29, "1536Mi"),
            ("2 Mi", 2 << 20, "2Mi"),
            ("100", 100, "100"),
            ("1k", 1000, "1000"),
            ("1024B", 1024, "1Ki"),
        ] {
            let b: ByteSize = input.parse().unwrap();
            assert_eq!(b.0, bytes, "{input}");
            assert_eq!(b.to_string(), canonical, "{input}");
            assert_eq!(b.to_string().parse::<ByteSize>().unwrap(), b, "{input}");
        }
        for bad in [
            "",
            "Gi",
            "1.5",
            "1 XB",
            "-1Gi",
            "0",
            "99999999999Ti",
            "1.0001Gi",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} parsed");
        }
    }
}
