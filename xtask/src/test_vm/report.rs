//! Reading the guest's test stream: which lab test passed, failed or skipped (and why), per
//! stage, and the verdict.

use std::fmt::Write as _;

/// The marker lines the run script writes start with this.
pub const MARK: &str = "@@nethuns-vm ";

/// How one lab test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exit status 0, no skip line.
    Passed,
    /// Exit status 0 after a `SKIPPED TEST: reason` line.
    Skipped(String),
    /// A non-zero exit status (124: the guest's per-test timeout).
    Failed(i32),
    /// Started, never ended (the guest stopped or the host killed it).
    Unfinished,
}

/// One lab test in one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `af-xdp`, `dpdk-vfio-pci`, ...
    pub stage: String,
    /// The test function.
    pub test: String,
    /// How it ended.
    pub status: Status,
}

/// What the stream says.
#[derive(Debug, Default)]
pub struct Report {
    /// Every test that began, in order.
    pub outcomes: Vec<Outcome>,
    /// Stages whose setup failed, with the message.
    pub setup_failed: Vec<String>,
    /// The run script's exit status, when the guest got to the end.
    pub done: Option<i32>,
}

impl Report {
    /// Whether a test ended with a non-zero status or a stage's setup failed (a test left
    /// unfinished by a stalled guest does not count).
    pub fn any_failed(&self) -> bool {
        !self.setup_failed.is_empty()
            || self
                .outcomes
                .iter()
                .any(|o| matches!(o.status, Status::Failed(_)))
    }
}

/// Reads the stream (the lines of the guest's test serial port).
pub fn parse(lines: &[String]) -> Report {
    let mut r = Report::default();
    let mut open: Option<usize> = None;
    for l in lines {
        if let Some(m) = l.strip_prefix(MARK) {
            let words: Vec<&str> = m.split_whitespace().collect();
            let rc = || {
                words
                    .iter()
                    .find_map(|w| w.strip_prefix("rc="))
                    .and_then(|v| v.parse().ok())
            };
            match words.as_slice() {
                ["begin", stage, test, ..] => {
                    r.outcomes.push(Outcome {
                        stage: stage.to_string(),
                        test: test.to_string(),
                        status: Status::Unfinished,
                    });
                    open = Some(r.outcomes.len() - 1);
                }
                ["end", ..] => {
                    if let Some(i) = open.take() {
                        let o = &mut r.outcomes[i];
                        o.status = match (rc(), &o.status) {
                            (Some(0), Status::Skipped(_)) => o.status.clone(),
                            (Some(0), _) => Status::Passed,
                            (Some(c), _) => Status::Failed(c),
                            (None, _) => Status::Failed(-1),
                        };
                    }
                }
                ["setup-failed", ..] => {
                    r.setup_failed.push(m["setup-failed".len()..].trim().into())
                }
                ["done", ..] => r.done = rc(),
                _ => {}
            }
        } else if let (Some(i), Some(at)) = (open, l.find("SKIPPED ")) {
            // libtest prints `test NAME ... ` and, with --nocapture, the test's own line after.
            let rest = &l[at + "SKIPPED ".len()..];
            let reason = rest.split_once(": ").map_or(rest, |(_, why)| why);
            r.outcomes[i].status = Status::Skipped(reason.trim().to_string());
        }
    }
    r
}

/// A skip the emulated hardware explains (not a missing setting): the driver lacks
/// zero-copy.
pub fn expected_skip(reason: &str) -> bool {
    reason.contains("has no AF_XDP zero-copy")
}

impl Report {
    /// The table of every test, counts per stage, the skips with their reasons, and what went
    /// wrong (empty when the run passed). `strict`: a skip that is not [`expected_skip`]
    /// counts as a failure (CI).
    pub fn summary(&self, strict: bool) -> (String, Vec<String>) {
        let mut s = String::new();
        let mut problems = Vec::new();
        let _ = writeln!(s, "\ntest-vm: lab tests inside the guest\n");
        for o in &self.outcomes {
            let what = match &o.status {
                Status::Passed => "passed".to_string(),
                Status::Skipped(why) => format!("skipped: {why}"),
                Status::Failed(124) => "FAILED (timed out in the guest)".to_string(),
                Status::Failed(c) => format!("FAILED (exit status {c})"),
                Status::Unfinished => "FAILED (never finished)".to_string(),
            };
            let _ = writeln!(s, "  {:<14} {:<55} {what}", o.stage, o.test);
        }
        let mut stages: Vec<&str> = Vec::new();
        for o in &self.outcomes {
            if !stages.contains(&o.stage.as_str()) {
                stages.push(&o.stage);
            }
        }
        let _ = writeln!(s);
        let count = |st: Option<&str>, f: &dyn Fn(&Status) -> bool| {
            self.outcomes
                .iter()
                .filter(|o| st.is_none_or(|st| o.stage == st) && f(&o.status))
                .count()
        };
        let passed = |x: &Status| *x == Status::Passed;
        let skipped = |x: &Status| matches!(x, Status::Skipped(_));
        let failed = |x: &Status| matches!(x, Status::Failed(_) | Status::Unfinished);
        for st in stages.iter().map(|s| Some(*s)).chain([None]) {
            let _ = writeln!(
                s,
                "  {:<14} {} passed, {} failed, {} skipped",
                st.unwrap_or("total"),
                count(st, &passed),
                count(st, &failed),
                count(st, &skipped)
            );
        }
        for o in &self.outcomes {
            match &o.status {
                Status::Skipped(why) if strict && !expected_skip(why) => problems.push(format!(
                    "{} {}: skipped under CI for a reason the guest should not have: {why}",
                    o.stage, o.test
                )),
                st if failed(st) => problems.push(format!("{} {}: failed", o.stage, o.test)),
                _ => {}
            }
        }
        for f in &self.setup_failed {
            problems.push(format!("stage setup failed: {f}"));
        }
        if self.outcomes.is_empty() {
            problems.push("no lab test ran in the guest".into());
        }
        match self.done {
            Some(_) => {}
            None => problems.push("the guest never reached the end of its run script".into()),
        }
        (s, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: &str) -> Vec<String> {
        t.lines().map(str::to_string).collect()
    }

    #[test]
    fn reads_passes_skips_failures_and_unfinished() {
        let r = parse(&lines(
            "@@nethuns-vm begin af-xdp a\nrunning 1 test\ntest a ... ok\n\
             @@nethuns-vm end af-xdp a rc=0\n\
             @@nethuns-vm begin af-xdp b\ntest b ... SKIPPED b: virtio_net on 6.12 has no AF_XDP zero-copy\n\
             @@nethuns-vm end af-xdp b rc=0\n\
             @@nethuns-vm begin dpdk c\n@@nethuns-vm end dpdk c rc=101\n\
             @@nethuns-vm begin dpdk d\n",
        ));
        let st: Vec<Status> = r.outcomes.iter().map(|o| o.status.clone()).collect();
        assert_eq!(
            st,
            [
                Status::Passed,
                Status::Skipped("virtio_net on 6.12 has no AF_XDP zero-copy".into()),
                Status::Failed(101),
                Status::Unfinished
            ]
        );
        let (text, problems) = r.summary(true);
        assert!(
            text.contains("af-xdp         1 passed, 0 failed, 1 skipped"),
            "{text}"
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn an_unexplained_skip_fails_only_when_strict() {
        let r = parse(&lines(
            "@@nethuns-vm begin dpdk a\nSKIPPED a: NETHUNS_HW_PEER is not set\n\
             @@nethuns-vm end dpdk a rc=0\n@@nethuns-vm done rc=0\n",
        ));
        assert!(r.summary(false).1.is_empty());
        assert_eq!(r.summary(true).1.len(), 1);
    }
}
