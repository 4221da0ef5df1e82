//! How fast a node's link moves blobs, as far as it knows (R-PLC-1).
//!
//! A node learns its rates from the transfers its driver reports
//! ([`LinkRates::record`]): a transfer moves no faster than the slower end,
//! so one sample only bounds the node's own rate from below. The estimate
//! is therefore the fastest of the recent samples, never lower than what
//! the operator declared (`--link`). Small transfers are latency, not
//! rate, and are not counted.
//!
//! Compute nodes use their download rate, and the rate the job's requester
//! serves at (its upload rate, carried in the announcement), to estimate
//! how long a job's inputs take to arrive, and decline jobs they could not
//! fetch within the job's `ExecutionTimeout`.

use serde::{Deserialize, Serialize};

/// Transfers smaller than this say more about latency than rate: 1 MiB.
pub const MIN_SAMPLE_BYTES: u64 = 1 << 20;

/// Recent samples kept per direction.
const SAMPLES: usize = 16;

/// Which way a transfer went, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// This node fetched the bytes.
    Down,
    /// This node served the bytes.
    Up,
}

/// One finished transfer of blobs, as the driver saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Fetched or served.
    pub direction: Direction,
    /// How many bytes.
    pub bytes: u64,
    /// How long it took, ms.
    pub ms: u64,
}

/// One direction's estimate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateEstimate {
    declared_bps: Option<u64>,
    /// Recent measured rates, bits per second, oldest first.
    samples: Vec<u64>,
}

impl RateEstimate {
    /// An estimate that starts from what the operator says the link does.
    pub fn declared(bps: Option<u64>) -> RateEstimate {
        RateEstimate {
            declared_bps: bps.filter(|b| *b > 0),
            samples: Vec::new(),
        }
    }

    /// The rate, bits per second: the fastest recent sample or the declared
    /// rate, whichever is higher; `None` while neither is known.
    pub fn bps(&self) -> Option<u64> {
        self.samples.iter().copied().chain(self.declared_bps).max()
    }

    fn record(&mut self, bytes: u64, ms: u64) {
        if bytes < MIN_SAMPLE_BYTES {
            return;
        }
        let bps = u128::from(bytes) * 8 * 1000 / u128::from(ms.max(1));
        if self.samples.len() == SAMPLES {
            self.samples.remove(0);
        }
        self.samples
            .push(u64::try_from(bps).unwrap_or(u64::MAX).max(1));
    }
}

/// A node's download and upload estimates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkRates {
    /// What it fetches at.
    pub down: RateEstimate,
    /// What it serves at.
    pub up: RateEstimate,
}

impl LinkRates {
    /// Rates that start from the operator's declaration (bits per second).
    pub fn declared(down_bps: Option<u64>, up_bps: Option<u64>) -> LinkRates {
        LinkRates {
            down: RateEstimate::declared(down_bps),
            up: RateEstimate::declared(up_bps),
        }
    }

    /// Counts one finished transfer.
    pub fn record(&mut self, transfer: Transfer) {
        let Transfer {
            direction,
            bytes,
            ms,
        } = transfer;
        match direction {
            Direction::Down => self.down.record(bytes, ms),
            Direction::Up => self.up.record(bytes, ms),
        }
    }
}

/// Why a `--link` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not `down=RATE,up=RATE`.
    #[error("write down=RATE,up=RATE, e.g. down=100Mbit,up=20Mbit (either may be left out)")]
    Syntax,
    /// A direction other than `down` and `up`.
    #[error("{0}: the directions are down and up")]
    Direction(String),
    /// A direction given twice.
    #[error("{0} is given twice")]
    Twice(&'static str),
    /// A rate that is not a number of kbit, Mbit or Gbit.
    #[error("{0}: write a rate such as 800kbit, 100Mbit or 1.5Gbit (bits per second)")]
    Rate(String),
}

/// Reads what an operator says of its link, `down=100Mbit,up=20Mbit`
/// (either may be left out): bits per second, download then upload.
pub fn parse_link(text: &str) -> Result<(Option<u64>, Option<u64>), LinkError> {
    let (mut down, mut up) = (None, None);
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (direction, rate) = part.split_once('=').ok_or(LinkError::Syntax)?;
        let (slot, name) = match direction.trim().to_ascii_lowercase().as_str() {
            "down" => (&mut down, "down"),
            "up" => (&mut up, "up"),
            other => return Err(LinkError::Direction(other.to_owned())),
        };
        if slot.is_some() {
            return Err(LinkError::Twice(name));
        }
        *slot = Some(parse_rate(rate.trim())?);
    }
    if down.is_none() && up.is_none() {
        return Err(LinkError::Syntax);
    }
    Ok((down, up))
}

/// `100Mbit` (also `100Mbit/s`, `100mbps`) in bits per second; never 0.
fn parse_rate(text: &str) -> Result<u64, LinkError> {
    let bad = || LinkError::Rate(text.to_owned());
    let lower = text.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("/s")
        .or_else(|| lower.strip_suffix("ps"))
        .unwrap_or(&lower);
    let (number, unit) = [
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("gb", 1e9),
        ("mb", 1e6),
        ("kb", 1e3),
    ]
    .into_iter()
    .find_map(|(suffix, unit)| lower.strip_suffix(suffix).map(|n| (n, unit)))
    .ok_or_else(bad)?;
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let bps = value * unit;
    if !(1.0..=1e13).contains(&bps) {
        return Err(bad());
    }
    Ok(bps as u64)
}

/// Milliseconds to move `bytes` at `bps` bits per second, rounded up.
pub fn transfer_ms(bytes: u64, bps: u64) -> u64 {
    let ms = (u128::from(bytes) * 8 * 1000).div_ceil(u128::from(bps.max(1)));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// A rate for people: `50 Mbit/s`, `1.5 Gbit/s`, `800 kbit/s`.
pub fn explain_rate(bps: u64) -> String {
    let (value, unit) = match bps {
        0..1_000_000 => (bps as f64 / 1e3, "kbit/s"),
        1_000_000..1_000_000_000 => (bps as f64 / 1e6, "Mbit/s"),
        _ => (bps as f64 / 1e9, "Gbit/s"),
    };
    if value.fract() < 0.05 || value >= 100.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// A size for people, to two significant figures: `1.0 GiB`, `340 KiB`,
/// `12 B`.
pub fn explain_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_plc_1_the_estimate_is_the_fastest_recent_sample_or_the_declared_rate() {
        let mut link = LinkRates::declared(Some(100_000_000), None);
        assert_eq!(link.down.bps(), Some(100_000_000));
        assert_eq!(link.up.bps(), None, "nothing known yet");
        // 10 MiB in 100 ms: 839 Mbit/s.
        link.record(Transfer {
            direction: Direction::Down,
            bytes: 10 << 20,
            ms: 100,
        });
        assert_eq!(link.down.bps(), Some(838_860_800));
        // A slow provider does not make the link slow.
        link.record(Transfer {
            direction: Direction::Down,
            bytes: 10 << 20,
            ms: 10_000,
        });
        assert_eq!(link.down.bps(), Some(838_860_800));
        // Small transfers do not count.
        link.record(Transfer {
            direction: Direction::Up,
            bytes: 1000,
            ms: 1,
        });
        assert_eq!(link.up.bps(), None);
        // Old samples age out.
        for _ in 0..SAMPLES {
            link.record(Transfer {
                direction: Direction::Down,
                bytes: 1 << 20,
                ms: 1_000,
            });
        }
        assert_eq!(link.down.bps(), Some(100_000_000), "the declared floor");
        link.record(Transfer {
            direction: Direction::Up,
            bytes: 1 << 20,
            ms: 0,
        });
        assert_eq!(link.up.bps(), Some(8_388_608_000), "0 ms counts as 1");
    }

    #[test]
    fn r_plc_1_a_link_is_read_from_what_an_operator_writes() {
        assert_eq!(
            parse_link("down=100Mbit,up=20Mbit"),
            Ok((Some(100_000_000), Some(20_000_000)))
        );
        assert_eq!(parse_link("up=1.5Gbit/s"), Ok((None, Some(1_500_000_000))));
        assert_eq!(parse_link("down=800kbps"), Ok((Some(800_000), None)));
        assert_eq!(parse_link(""), Err(LinkError::Syntax));
        assert_eq!(parse_link("100Mbit"), Err(LinkError::Syntax));
        assert_eq!(
            parse_link("sideways=1Mbit"),
            Err(LinkError::Direction("sideways".into()))
        );
        assert_eq!(parse_link("up=1Mbit,up=2Mbit"), Err(LinkError::Twice("up")));
        for rate in ["fast", "0Mbit", "-1Mbit", "100", "NaNMbit", "1e9Gbit"] {
            let said = parse_link(&format!("down={rate}")).unwrap_err().to_string();
            assert!(said.contains("100Mbit"), "{rate}: {said}");
        }
    }

    #[test]
    fn transfer_times_and_rates_read_well() {
        // 1 GiB at 50 Mbit/s: 8.59e9 bits / 5e4 bits per ms.
        assert_eq!(transfer_ms(1 << 30, 50_000_000), 171_799);
        assert_eq!(transfer_ms(1, 8_000), 1, "rounded up");
        assert_eq!(transfer_ms(u64::MAX, 1), u64::MAX, "saturates");
        assert_eq!(explain_rate(50_000_000), "50 Mbit/s");
        assert_eq!(explain_rate(1_500_000_000), "1.5 Gbit/s");
        assert_eq!(explain_rate(800_000), "800 kbit/s");
        assert_eq!(explain_bytes(1 << 30), "1.0 GiB");
        assert_eq!(explain_bytes(340 << 10), "340 KiB");
        assert_eq!(explain_bytes(12), "12 B");
    }
}
