//! What a veth run measures and how runs are summarised: [`Sample`] (one run's totals),
//! [`Row`] (nethuns against its baseline, several runs each), the kinds of test
//! ([`Test`]) and their targets, medians.

use std::path::PathBuf;

use crate::backends::Backend;
use crate::util::json_num;

/// One run's totals, parsed from a tool's JSON line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub pps: f64,
    pub bps: f64,
    pub cpu: f64,
    pub allocs: f64,
    pub pkts: f64,
    /// Receive runs: the generator's rate in the same run (the offered load).
    pub offered: f64,
}

impl Sample {
    /// The totals of a tool's JSON line (`pps` required).
    pub fn parse(line: &str) -> Option<Sample> {
        Some(Sample {
            pps: json_num(line, "pps")?,
            bps: json_num(line, "bps").unwrap_or(0.0),
            cpu: json_num(line, "cpu").unwrap_or(0.0),
            allocs: json_num(line, "allocs").unwrap_or(0.0),
            pkts: json_num(line, "packets").unwrap_or(0.0),
            offered: 0.0,
        })
    }
}

/// Median, minimum and maximum.
pub fn stats(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    };
    (m, s[0], s[s.len() - 1])
}

/// The median of one field over samples.
pub fn median(v: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    stats(&v.iter().map(f).collect::<Vec<_>>()).0
}

/// What a veth row compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// The nethuns meter against the raw engine's receive loop.
    Rx,
    /// The nethuns generator against the raw engine's transmit loop.
    Tx,
    /// AF_XDP receive against an XDP program that counts and drops (the receive ceiling).
    Ceiling,
    /// Forwarding between two veth pairs: the channel API (two threads) against one thread.
    FwdChannel,
    /// Forwarding, one thread: the received payload sent as is (`send_payload`, zero-copy
    /// where the engine can) against a copy (`send`).
    FwdZeroCopy,
}

impl Test {
    /// The name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Test::Rx => "rx",
            Test::Tx => "tx",
            Test::Ceiling => "rx vs XDP-drop ceiling",
            Test::FwdChannel => "fwd: channel vs 1 thread",
            Test::FwdZeroCopy => "fwd: zero-copy vs copy",
        }
    }

    /// The short name under a bar of the plot.
    pub fn short(self) -> &'static str {
        match self {
            Test::Rx => "rx",
            Test::Tx => "tx",
            Test::Ceiling => "rx/ceil",
            Test::FwdChannel => "fwd ch/1t",
            Test::FwdZeroCopy => "fwd zc/copy",
        }
    }

    /// The ratio nethuns must reach against the baseline, if the test has a target.
    pub fn target(self) -> Option<f64> {
        match self {
            Test::Rx | Test::Tx => Some(0.97),
            Test::Ceiling => Some(0.8),
            Test::FwdChannel | Test::FwdZeroCopy => None,
        }
    }
}

/// A comparison: nethuns against a baseline.
pub struct Row {
    pub backend: Backend,
    pub test: Test,
    pub size: usize,
    pub ours: Vec<Sample>,
    pub base: Vec<Sample>,
    pub base_name: String,
    pub error: Option<String>,
    /// A perf report of the nethuns side, for rows below target.
    pub profile: Option<PathBuf>,
}

impl Row {
    pub fn new(backend: Backend, test: Test, size: usize, base_name: &str) -> Row {
        Row {
            backend,
            test,
            size,
            ours: vec![],
            base: vec![],
            base_name: base_name.into(),
            error: None,
            profile: None,
        }
    }

    /// Median rate of nethuns over median rate of the baseline (0 without a baseline).
    pub fn ratio(&self) -> f64 {
        let o = median(&self.ours, |s| s.pps);
        let b = median(&self.base, |s| s.pps);
        if b > 0.0 {
            o / b
        } else {
            0.0
        }
    }

    /// Whether the row has a target and misses it.
    pub fn below_target(&self) -> bool {
        self.test
            .target()
            .is_some_and(|t| !self.base.is_empty() && self.ratio() < t)
    }
}
