//! Pacing of `nethuns-gen` and `nethuns-replay`: an absolute schedule from the start (no
//! drift), in packets or bits per second, or from recorded timestamps.

use std::time::{Duration, Instant};

/// A rate to keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the engine takes frames.
    Top,
    /// Packets per second.
    Pps(f64),
    /// Megabits per second (frame bytes, FCS excluded).
    Mbps(f64),
}

impl Rate {
    /// From `--pps` / `--mbps` (0 or absent: top speed); `share` of the total for one of
    /// several queues.
    pub fn from_args(pps: Option<f64>, mbps: Option<f64>, share: f64) -> Rate {
        match (pps, mbps) {
            (Some(p), _) if p > 0.0 => Rate::Pps(p * share),
            (_, Some(m)) if m > 0.0 => Rate::Mbps(m * share),
            _ => Rate::Top,
        }
    }

    /// When the next frame is due, after `pkts` frames and `bytes` bytes since `start`;
    /// `None` at top speed.
    #[inline]
    pub fn due(&self, start: Instant, pkts: u64, bytes: u64) -> Option<Instant> {
        match *self {
            Rate::Top => None,
            Rate::Pps(p) => Some(start + Duration::from_secs_f64(pkts as f64 / p)),
            Rate::Mbps(m) => Some(start + Duration::from_secs_f64(bytes as f64 * 8.0 / (m * 1e6))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        let t = Instant::now();
        assert_eq!(
            Rate::Pps(1000.0).due(t, 1000, 0),
            Some(t + Duration::from_secs(1))
        );
        assert_eq!(
            Rate::Mbps(1.0).due(t, 0, 125_000),
            Some(t + Duration::from_secs(1))
        );
        assert_eq!(Rate::Top.due(t, 5, 5), None);
        assert_eq!(Rate::from_args(Some(100.0), None, 0.5), Rate::Pps(50.0));
        assert_eq!(Rate::from_args(Some(0.0), None, 1.0), Rate::Top);
    }
}
