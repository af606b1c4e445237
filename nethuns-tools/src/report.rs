//! Counters shared between the worker threads and the reporting thread, the per-interval
//! lines and the totals (text or JSON lines), and the run of the workers.
//!
//! Each worker owns its socket and keeps a [`Tally`]; it publishes it into its queue's
//! [`Counters`] (relaxed atomics) often and reads `Socket::stats()` every 100 ms, so the
//! engine's drops and send errors are in every line. The main thread prints one line per
//! queue (and one for all queues when there are several) every interval, and the totals when
//! the workers end or within 100 ms of a stop request, whatever the workers are doing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nethuns::api::Stats;
use serde_json::{json, Value};

use crate::exit::ToolError;
use crate::signal;

const NONE: u64 = u64::MAX;

/// What one worker counted (plain values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent (accepted by `send`).
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames the engine dropped before `recv` (`Stats::dropped`), if it knows.
    pub dropped: Option<u64>,
    /// Frames the engine refused or failed to send (`Stats::send_errors`).
    pub send_errors: u64,
    /// Frames the tool itself gave up on (too big for the output link, TX full too long).
    pub skipped: u64,
    /// Nanoseconds from the start to the first packet.
    pub first_ns: Option<u64>,
    /// Nanoseconds from the start to the last packet.
    pub last_ns: u64,
    /// The first packet's own timestamp (ns since the epoch), where the engine stamps them.
    pub ts_first: Option<u64>,
    /// The last packet's own timestamp.
    pub ts_last: u64,
    /// Whether the link was down at the last look.
    pub down: bool,
}

impl Tally {
    /// Sums `other` into `self` (for the line of all queues).
    pub fn add(&mut self, o: &Tally) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.dropped = match (self.dropped, o.dropped) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.send_errors += o.send_errors;
        self.skipped += o.skipped;
        self.first_ns = match (self.first_ns, o.first_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ns = self.last_ns.max(o.last_ns);
        self.ts_first = match (self.ts_first, o.ts_first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ts_last = self.ts_last.max(o.ts_last);
        self.down |= o.down;
    }

    /// Seconds from the first to the last packet (0 with fewer than two).
    pub fn active(&self) -> f64 {
        self.first_ns
            .map_or(0.0, |f| self.last_ns.saturating_sub(f) as f64 / 1e9)
    }

    /// Seconds between the first and the last packet's own timestamps, where known.
    pub fn span(&self) -> Option<f64> {
        self.ts_first
            .map(|f| self.ts_last.saturating_sub(f) as f64 / 1e9)
    }

    /// Takes the engine's counters.
    pub fn take_stats(&mut self, s: &Stats) {
        if let Some(d) = s.dropped {
            self.dropped = Some(d);
        }
        self.send_errors = s.send_errors;
    }
}

/// One queue's counters, written by its worker, read by the reporter.
#[derive(Debug)]
pub struct Counters {
    v: [AtomicU64; 11],
    down: AtomicBool,
    done: AtomicBool,
}

impl Default for Counters {
    fn default() -> Self {
        let c = Counters {
            v: Default::default(),
            down: AtomicBool::new(false),
            done: AtomicBool::new(false),
        };
        c.v[4].store(NONE, Relaxed);
        c.v[7].store(NONE, Relaxed);
        c.v[9].store(NONE, Relaxed);
        c
    }
}

impl Counters {
    /// Publishes `t`.
    pub fn store(&self, t: &Tally) {
        let vals = [
            t.rx_packets,
            t.rx_bytes,
            t.tx_packets,
            t.tx_bytes,
            t.dropped.unwrap_or(NONE),
            t.send_errors,
            t.skipped,
            t.first_ns.unwrap_or(NONE),
            t.last_ns,
            t.ts_first.unwrap_or(NONE),
            t.ts_last,
        ];
        for (a, v) in self.v.iter().zip(vals) {
            a.store(v, Relaxed);
        }
        self.down.store(t.down, Relaxed);
    }

    /// The last published tally.
    pub fn load(&self) -> Tally {
        let g = |i: usize| self.v[i].load(Relaxed);
        let opt = |v: u64| (v != NONE).then_some(v);
        Tally {
            rx_packets: g(0),
            rx_bytes: g(1),
            tx_packets: g(2),
            tx_bytes: g(3),
            dropped: opt(g(4)),
            send_errors: g(5),
            skipped: g(6),
            first_ns: opt(g(7)),
            last_ns: g(8),
            ts_first: opt(g(9)),
            ts_last: g(10),
            down: self.down.load(Relaxed),
        }
    }
}

/// A worker's view: its tally, when to publish and when to read the engine's stats.
pub struct Worker {
    /// The counts.
    pub t: Tally,
    counters: Arc<Vec<Counters>>,
    index: usize,
    start: Instant,
    next_stats: Instant,
    unpublished: u32,
}

impl Worker {
    /// The packet just handled: first/last times.
    #[inline]
    pub fn mark(&mut self) {
        let ns = self.start.elapsed().as_nanos() as u64;
        if self.t.first_ns.is_none() {
            self.t.first_ns = Some(ns);
        }
        self.t.last_ns = ns;
    }

    /// A packet of `len` bytes received, with its own timestamp `ts`: counted, stamped and
    /// marked.
    #[inline]
    pub fn received(&mut self, len: usize, ts: Option<u64>) {
        self.t.rx_packets += 1;
        self.t.rx_bytes += len as u64;
        self.stamp(ts);
        self.mark();
    }

    /// A packet of `len` bytes sent: counted and marked.
    #[inline]
    pub fn sent(&mut self, len: usize) {
        self.t.tx_packets += 1;
        self.t.tx_bytes += len as u64;
        self.mark();
    }

    /// The packet's own timestamp.
    #[inline]
    pub fn stamp(&mut self, ts: Option<u64>) {
        if let Some(ts) = ts {
            if self.t.ts_first.is_none() {
                self.t.ts_first = Some(ts);
            }
            self.t.ts_last = ts;
        }
    }

    /// Publishes every 64 calls; returns whether the engine's stats are due (every 100 ms).
    #[inline]
    pub fn tick(&mut self) -> bool {
        self.unpublished += 1;
        if self.unpublished < 64 {
            return false;
        }
        self.idle()
    }

    /// Publishes now; returns whether the engine's stats are due.
    pub fn idle(&mut self) -> bool {
        self.unpublished = 0;
        self.publish();
        let now = Instant::now();
        if now >= self.next_stats {
            self.next_stats = now + Duration::from_millis(100);
            true
        } else {
            false
        }
    }

    /// Publishes the tally.
    pub fn publish(&self) {
        self.counters[self.index].store(&self.t);
    }

    /// Publishes the final tally: the totals need not wait for the sockets to close (closing
    /// an AF_PACKET socket waits for an RCU grace period, tens of milliseconds).
    pub fn finish(&self) {
        self.publish();
        self.counters[self.index].done.store(true, Relaxed);
    }
}

/// What a tool counts, for the lines.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    /// Receives.
    pub rx: bool,
    /// Sends.
    pub tx: bool,
}

/// The reporter: labels, counters, output format.
pub struct Report {
    tool: &'static str,
    kind: Kind,
    json: bool,
    quiet: bool,
    interval: Duration,
    limit: Option<Duration>,
    start: Instant,
    labels: Vec<String>,
    counters: Arc<Vec<Counters>>,
}

/// `1.234 Mpps`, `12.0 kpps`, `999 pps`.
pub fn fmt_pps(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.3} Mpps", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.3} kpps", pps / 1e3)
    } else {
        format!("{pps:.1} pps")
    }
}

/// `1.234 Gbit/s` …
pub fn fmt_bps(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.3} Gbit/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.3} Mbit/s", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.3} kbit/s", bps / 1e3)
    } else {
        format!("{bps:.1} bit/s")
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("unknown".into(), |d| d.to_string())
}

impl Report {
    /// A reporter for `tool` over `queues` (labels `q0`, `q1`, …, or the interface name).
    pub fn new(
        tool: &'static str,
        kind: Kind,
        common: &crate::cli::Common,
        queues: &[Option<usize>],
    ) -> Report {
        let labels = queues
            .iter()
            .map(|q| match q {
                Some(q) => format!("q{q}"),
                None => "all".to_string(),
            })
            .collect::<Vec<_>>();
        let counters = Arc::new((0..labels.len()).map(|_| Counters::default()).collect());
        Report {
            tool,
            kind,
            json: common.json,
            quiet: common.quiet,
            interval: Duration::from_secs_f64(common.interval.max(0.01)),
            limit: common.limit(),
            start: Instant::now(),
            labels,
            counters,
        }
    }

    /// The worker view of queue `index`.
    pub fn worker(&self, index: usize) -> Worker {
        Worker {
            t: Tally::default(),
            counters: self.counters.clone(),
            index,
            start: self.start,
            next_stats: Instant::now(),
            unpublished: 0,
        }
    }

    /// The start of the run.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn queue_value(&self, label: &str) -> Value {
        match label.strip_prefix('q').and_then(|q| q.parse::<u64>().ok()) {
            Some(q) => json!(q),
            None => json!(label),
        }
    }

    fn counts_json(&self, t: &Tally) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if self.kind.rx {
            m.insert("rx_packets".into(), json!(t.rx_packets));
            m.insert("rx_bytes".into(), json!(t.rx_bytes));
            m.insert("dropped".into(), json!(t.dropped));
        }
        if self.kind.tx {
            m.insert("tx_packets".into(), json!(t.tx_packets));
            m.insert("tx_bytes".into(), json!(t.tx_bytes));
        }
        m.insert("send_errors".into(), json!(t.send_errors));
        m.insert("skipped".into(), json!(t.skipped));
        m.insert("link_down".into(), json!(t.down));
        m
    }

    fn interval_line(&self, label: &str, now: &Tally, prev: &Tally, dt: f64, t: f64) {
        let dt = dt.max(1e-9);
        let rx_pps = (now.rx_packets - prev.rx_packets) as f64 / dt;
        let rx_bps = (now.rx_bytes - prev.rx_bytes) as f64 * 8.0 / dt;
        let tx_pps = (now.tx_packets - prev.tx_packets) as f64 / dt;
        let tx_bps = (now.tx_bytes - prev.tx_bytes) as f64 * 8.0 / dt;
        let d_drop = now
            .dropped
            .map(|d| d.saturating_sub(prev.dropped.unwrap_or(0)));
        let d_err = now.send_errors.saturating_sub(prev.send_errors);
        if self.json {
            let mut m = self.counts_json(now);
            m.insert("tool".into(), json!(self.tool));
            m.insert("event".into(), json!("interval"));
            m.insert("t".into(), json!((t * 1e3).round() / 1e3));
            m.insert("queue".into(), self.queue_value(label));
            if self.kind.rx {
                m.insert("rx_pps".into(), json!(rx_pps.round()));
                m.insert("rx_bps".into(), json!(rx_bps.round()));
                m.insert("dropped_delta".into(), json!(d_drop));
            }
            if self.kind.tx {
                m.insert("tx_pps".into(), json!(tx_pps.round()));
                m.insert("tx_bps".into(), json!(tx_bps.round()));
            }
            m.insert("send_errors_delta".into(), json!(d_err));
            println!("{}", Value::Object(m));
            return;
        }
        let mut s = format!("{t:8.3}s {label:>4}");
        if self.kind.rx {
            s += &format!("  rx {} {}", fmt_pps(rx_pps), fmt_bps(rx_bps));
        }
        if self.kind.tx {
            s += &format!("  tx {} {}", fmt_pps(tx_pps), fmt_bps(tx_bps));
        }
        if self.kind.rx {
            s += &format!(
                "  dropped {} (+{})",
                opt(now.dropped),
                opt(d_drop).replace("unknown", "?")
            );
        }
        s += &format!("  send errors {} (+{d_err})", now.send_errors);
        if now.skipped > 0 {
            s += &format!("  skipped {}", now.skipped);
        }
        if now.down {
            s += "  LINK DOWN";
        }
        println!("{s}");
    }

    fn total_line(&self, label: &str, t: &Tally, elapsed: f64) {
        let active = t.active();
        let rate = |n: u64| if active > 0.0 { n as f64 / active } else { 0.0 };
        if self.json {
            let mut m = self.counts_json(t);
            m.insert("tool".into(), json!(self.tool));
            m.insert("event".into(), json!("total"));
            m.insert("queue".into(), self.queue_value(label));
            m.insert("seconds".into(), json!(active));
            m.insert("elapsed".into(), json!(elapsed));
            if self.kind.rx {
                m.insert("rx_pps".into(), json!(rate(t.rx_packets)));
                m.insert("rx_bps".into(), json!(rate(t.rx_bytes) * 8.0));
            }
            if self.kind.tx {
                m.insert("tx_pps".into(), json!(rate(t.tx_packets)));
                m.insert("tx_bps".into(), json!(rate(t.tx_bytes) * 8.0));
            }
            m.insert("span".into(), json!(t.span()));
            m.insert("stopped_by_signal".into(), json!(signal::signalled()));
            println!("{}", Value::Object(m));
            return;
        }
        let mut s = format!("total {label}:");
        if self.kind.rx {
            s += &format!(" rx {} packets {} bytes", t.rx_packets, t.rx_bytes);
        }
        if self.kind.tx {
            s += &format!(" tx {} packets {} bytes", t.tx_packets, t.tx_bytes);
        }
        s += &format!(" in {active:.6} s (first to last packet)");
        if self.kind.rx && active > 0.0 {
            s += &format!(
                "  rx {} {}",
                fmt_pps(rate(t.rx_packets)),
                fmt_bps(rate(t.rx_bytes) * 8.0)
            );
        }
        if self.kind.tx && active > 0.0 {
            s += &format!(
                "  tx {} {}",
                fmt_pps(rate(t.tx_packets)),
                fmt_bps(rate(t.tx_bytes) * 8.0)
            );
        }
        if let Some(span) = t.span() {
            s += &format!("; timestamps span {span:.6} s");
        }
        if self.kind.rx {
            s += &format!("; dropped by the engine {}", opt(t.dropped));
        }
        s += &format!("; send errors {}", t.send_errors);
        if t.skipped > 0 {
            s += &format!("; skipped {}", t.skipped);
        }
        s += &format!("; ran {elapsed:.3} s");
        println!("{s}");
    }

    fn all(&self, ts: &[Tally]) -> Tally {
        let mut all = Tally::default();
        for t in ts {
            all.add(t);
        }
        all
    }

    fn snapshot(&self) -> Vec<Tally> {
        self.counters.iter().map(Counters::load).collect()
    }

    /// Runs until every worker ends, the duration limit passes or a stop is requested; prints
    /// the lines and the totals; returns the exit status (the first worker error's, else 0).
    pub fn run(self, workers: Vec<JoinHandle<Result<(), ToolError>>>) -> i32 {
        let mut handles: Vec<Option<JoinHandle<Result<(), ToolError>>>> =
            workers.into_iter().map(Some).collect();
        let mut errors: Vec<ToolError> = vec![];
        let mut prev = self.snapshot();
        let mut last_line = self.start;
        let mut stop_at: Option<Instant> = None;
        let reap = |handles: &mut Vec<Option<JoinHandle<Result<(), ToolError>>>>,
                    errors: &mut Vec<ToolError>| {
            for h in handles.iter_mut() {
                if h.as_ref().is_some_and(|h| h.is_finished()) {
                    match h.take().map(JoinHandle::join) {
                        Some(Ok(Err(e))) => {
                            signal::request_stop();
                            errors.push(e);
                        }
                        Some(Err(_)) => {
                            signal::request_stop();
                            errors.push(ToolError::Runtime("a worker thread panicked".into()));
                        }
                        _ => {}
                    }
                }
            }
        };
        loop {
            std::thread::sleep(Duration::from_millis(5));
            reap(&mut handles, &mut errors);
            let done = |i: usize| self.counters[i].done.load(Relaxed);
            // Workers and queues: every queue done (or its threads gone).
            if handles.iter().all(Option::is_none) || (0..self.counters.len()).all(done) {
                break;
            }
            let now = Instant::now();
            if self.limit.is_some_and(|l| now - self.start >= l) {
                signal::request_stop();
            }
            if signal::stopped() {
                // Workers see the flag within one wait step; totals are printed within
                // 100 ms of the request whatever they do.
                let at = *stop_at.get_or_insert(now);
                if now - at >= Duration::from_millis(70) {
                    for (i, l) in self.labels.iter().enumerate() {
                        if !done(i) {
                            eprintln!(
                                "{}: {l} has not stopped yet; its totals are its last report",
                                self.tool
                            );
                        }
                    }
                    break;
                }
                continue;
            }
            if !self.quiet && now - last_line >= self.interval {
                let cur = self.snapshot();
                let dt = (now - last_line).as_secs_f64();
                let t = (now - self.start).as_secs_f64();
                for (i, l) in self.labels.iter().enumerate() {
                    self.interval_line(l, &cur[i], &prev[i], dt, t);
                }
                if cur.len() > 1 {
                    self.interval_line("all", &self.all(&cur), &self.all(&prev), dt, t);
                }
                prev = cur;
                last_line = now;
            }
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        let cur = self.snapshot();
        for (i, l) in self.labels.iter().enumerate() {
            self.total_line(l, &cur[i], elapsed);
        }
        if cur.len() > 1 {
            self.total_line("all", &self.all(&cur), elapsed);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // Let the sockets close (XDP programs detached, rings unmapped), for at most 3 s.
        let deadline = Instant::now() + Duration::from_secs(3);
        while handles.iter().any(Option::is_some) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            reap(&mut handles, &mut errors);
        }
        match errors.into_iter().next() {
            Some(e) => {
                eprintln!("{}: {e}", self.tool);
                e.code()
            }
            None => crate::exit::OK,
        }
    }
}

/// Spawns one worker thread named `tool-LABEL`; a failing worker asks the others to stop.
pub fn spawn(
    name: String,
    f: impl FnOnce() -> Result<(), ToolError> + Send + 'static,
) -> JoinHandle<Result<(), ToolError>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let r = f();
            if r.is_err() {
                signal::request_stop();
            }
            r
        })
        .expect("spawning a worker thread")
}
