//! The rows of the instruction-cost table: what each measures ([`CostTest`]), its numbers,
//! its target and how it misses it ([`CostRow`]).

use crate::backends::Backend;

/// Entries of the profile difference in the table's last column.
pub const TABLE_TOP: usize = 4;

/// What a cost row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostTest {
    /// `recv` per packet against the raw receive loop.
    Rx,
    /// `recv_batch` of 32 against the raw receive loop.
    RxBatch,
    /// `send` per frame, a flush every 32, against the raw transmit loop.
    Tx,
    /// `send_batch` of 32.
    TxBatch,
    /// `send_with`: the frame written in place.
    TxSendWith,
    /// Receive + `send_payload` (zero-copy where the engine can) against receive + `send`.
    Fwd,
}

impl CostTest {
    /// Every test, in the order of the table.
    pub const ALL: [CostTest; 6] = [
        CostTest::Rx,
        CostTest::Tx,
        CostTest::RxBatch,
        CostTest::TxBatch,
        CostTest::TxSendWith,
        CostTest::Fwd,
    ];

    /// The name in the table (DPDK's rows are prefixed `loop`).
    pub fn label(self) -> &'static str {
        match self {
            CostTest::Rx => "rx",
            CostTest::RxBatch => "rx batch 32",
            CostTest::Tx => "tx",
            CostTest::TxBatch => "tx batch 32",
            CostTest::TxSendWith => "tx send_with",
            CostTest::Fwd => "fwd",
        }
    }

    /// The function callgrind counts in.
    pub fn func(self) -> &'static str {
        match self {
            CostTest::Rx | CostTest::RxBatch => "cost_drain",
            CostTest::Tx | CostTest::TxBatch | CostTest::TxSendWith => "tx_loop",
            CostTest::Fwd => "cost_fwd",
        }
    }

    /// The `cost` tool's flags for this test (after `--mode`).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            CostTest::RxBatch | CostTest::TxBatch => &["--batch"],
            CostTest::TxSendWith => &["--send-with"],
            _ => &[],
        }
    }

    /// Whether an empty poll is measured too.
    pub fn receives(self) -> bool {
        matches!(self, CostTest::Rx | CostTest::RxBatch | CostTest::Fwd)
    }
}

/// One measured path: nethuns against the raw loop (or, for `fwd`, against the copy).
pub struct CostRow {
    pub backend: Backend,
    pub test: CostTest,
    /// DPDK's in-process loopback rows.
    pub looped: bool,
    pub ours: Option<f64>,
    /// The baseline: the raw loop, or nethuns' copying forward for `fwd`.
    pub raw: Option<f64>,
    /// Instructions per empty poll (receive rows).
    pub ours_empty: Option<f64>,
    pub raw_empty: Option<f64>,
    /// Million packets per second without callgrind (DPDK loopback rows).
    pub ours_mpps: Option<f64>,
    pub raw_mpps: Option<f64>,
    /// The largest entries of nethuns' profile beyond the baseline's, instructions per packet.
    pub top: Vec<(String, f64)>,
    pub error: Option<String>,
}

impl CostRow {
    pub fn new(backend: Backend, test: CostTest, looped: bool) -> CostRow {
        CostRow {
            backend,
            test,
            looped,
            ours: None,
            raw: None,
            ours_empty: None,
            raw_empty: None,
            ours_mpps: None,
            raw_mpps: None,
            top: vec![],
            error: None,
        }
    }

    /// `rx`, or `loop rx` for DPDK's loopback.
    pub fn label(&self) -> String {
        if self.looped {
            format!("loop {}", self.test.label())
        } else {
            self.test.label().to_string()
        }
    }

    /// What the baseline column holds.
    pub fn baseline(&self) -> &'static str {
        if self.test == CostTest::Fwd {
            "nethuns, send (copy)"
        } else {
            "raw"
        }
    }

    /// The row's target for the gap per packet, in instructions over the baseline.
    pub fn target(&self) -> Option<f64> {
        match self.test {
            CostTest::RxBatch | CostTest::TxBatch => Some(5.0),
            CostTest::Rx if self.backend == Backend::Pcap => Some(40.0),
            CostTest::Fwd => None,
            _ => Some(15.0),
        }
    }

    /// The targets the row misses, with the measured gap and the profile entries beyond the
    /// baseline's.
    pub fn misses(&self) -> Vec<String> {
        let mut v = vec![];
        let why = if self.top.is_empty() {
            String::new()
        } else {
            let t: Vec<String> = self
                .top
                .iter()
                .map(|(n, i)| format!("{n} {i:.1}"))
                .collect();
            let sum: f64 = self.top.iter().map(|(_, i)| i).sum();
            format!(
                "; beyond raw ({sum:.0} of the gap in these entries): {}",
                t.join(", ")
            )
        };
        if let (Some(o), Some(r), Some(t)) = (self.ours, self.raw, self.target()) {
            if o - r > t {
                v.push(format!(
                    "{} {}: {:+.1} instructions per packet over raw (target +{t}){why}",
                    self.backend,
                    self.label(),
                    o - r,
                ));
            }
        }
        if let (Some(o), Some(r)) = (self.ours_empty, self.raw_empty) {
            if o > 1.2 * r && self.test != CostTest::Fwd {
                v.push(format!(
                    "{} {}: an empty poll {:.0} instructions, {:.2}× raw's {:.0} (target 1.2×)",
                    self.backend,
                    self.label(),
                    o,
                    o / r,
                    r
                ));
            }
        }
        v
    }
}
