//! Options every tool has: interface, queues, backend and its flags, limits, output.

use std::time::Duration;

use clap::Args;

use crate::backend::{Backend, BackendOpts};

/// The options common to every tool.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Portspec: an interface name, or the backend's form (`file:X.pcap` for pcap,
    /// `net_af_packet0,iface=IF` for DPDK, `netmap:IF` for netmap).
    #[arg(short = 'i', long)]
    pub iface: String,
    /// Queues: a list or ranges (`0`, `0-3`, `0,2,4-5`): one socket and one thread per queue.
    /// Default: no queue (the backend's default; pcap has no queues).
    #[arg(short = 'q', long, value_parser = parse_queues)]
    pub queue: Option<Queues>,
    /// Engine.
    #[arg(short = 'b', long, value_enum, default_value = "pcap")]
    pub backend: Backend,
    /// Stop after this many seconds (0: no limit).
    #[arg(short = 'd', long, default_value_t = 0.0)]
    pub duration: f64,
    /// Seconds between two rate lines.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print every line as one JSON object (per-interval and totals).
    #[arg(long)]
    pub json: bool,
    /// No per-interval lines, only the totals.
    #[arg(long)]
    pub quiet: bool,
    /// Every field of the backend's flags.
    #[command(flatten)]
    pub opts: BackendOpts,
}

impl Common {
    /// The queues to open: `[None]` without `-q`.
    pub fn queues(&self) -> Vec<Option<usize>> {
        match &self.queue {
            None => vec![None],
            Some(q) => q.0.iter().map(|&q| Some(q)).collect(),
        }
    }

    /// `--duration` as a limit.
    pub fn limit(&self) -> Option<Duration> {
        (self.duration > 0.0).then(|| Duration::from_secs_f64(self.duration))
    }
}

/// A list of queue numbers, in the order given, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queues(pub Vec<usize>);

/// Parses `0`, `0-3`, `0,2,4-5`.
pub fn parse_queues(s: &str) -> Result<Queues, String> {
    let mut v = vec![];
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let p = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("{part:?}: expected a queue number or a range A-B"))
        };
        let (lo, hi) = (p(lo)?, p(hi)?);
        if lo > hi || hi - lo >= 1024 {
            return Err(format!(
                "{part:?}: expected A-B with A ≤ B, at most 1024 queues"
            ));
        }
        for q in lo..=hi {
            if v.contains(&q) {
                return Err(format!("queue {q} given twice"));
            }
            v.push(q);
        }
    }
    if v.is_empty() {
        return Err("no queue".into());
    }
    Ok(Queues(v))
}

/// A range of numbers `A` or `A-B` (ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First value.
    pub lo: u16,
    /// Last value (inclusive).
    pub hi: u16,
}

impl Range {
    /// How many values.
    pub fn len(&self) -> u64 {
        u64::from(self.hi - self.lo) + 1
    }

    /// Always false: a range has at least one value.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th value, wrapping around.
    #[inline]
    pub fn nth(&self, i: u64) -> u16 {
        self.lo + (i % self.len()) as u16
    }
}

/// Parses a port or a port range (`9`, `1024-2047`).
pub fn parse_range(s: &str) -> Result<Range, String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: expected a port 0-65535 or a range A-B"))
    };
    let (lo, hi) = (p(a)?, p(b)?);
    if lo > hi {
        return Err(format!("{s:?}: the range's start is after its end"));
    }
    Ok(Range { lo, hi })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues() {
        assert_eq!(parse_queues("0").unwrap().0, vec![0]);
        assert_eq!(parse_queues("0-3").unwrap().0, vec![0, 1, 2, 3]);
        assert_eq!(parse_queues("4,0-1").unwrap().0, vec![4, 0, 1]);
        assert!(parse_queues("1,1").is_err());
        assert!(parse_queues("3-1").is_err());
        assert!(parse_queues("x").is_err());
        assert!(parse_queues("").is_err());
    }

    #[test]
    fn ranges() {
        let r = parse_range("10-12").unwrap();
        assert_eq!((r.len(), r.nth(0), r.nth(2), r.nth(3)), (3, 10, 12, 10));
        assert_eq!(parse_range("9").unwrap().len(), 1);
        assert!(parse_range("12-10").is_err());
        assert!(parse_range("70000").is_err());
    }
}
