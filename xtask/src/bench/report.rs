//! The Markdown of both tables (instruction cost, veth rates), the rows below target named
//! under each, and the README's benchmark section rewritten between its markers.

use std::fmt::Write as _;

use super::cost::{CostRow, TABLE_TOP};
use super::run::Cfg;
use super::stats::{median, stats, Row, Sample, Test};
use crate::backends::Backend;
use crate::util::{self, machine};

/// What the cost table's rows measure (the paragraph above it).
fn cost_preamble() -> String {
    format!(
        "Machine: {}. User-space instructions counted by callgrind inside the measured \
         function only (setup excluded): receive = {{256 (pcap), 1024}} 64-byte frames queued \
         in the ring before the loop starts, empty-poll cost subtracted; empty poll = mean of \
         10 000; transmit = 4096 frames, a flush every 32 (`tx send_with`: each frame written \
         in place); `fwd` = each received frame sent back on the same socket with \
         `send_payload` (zero-copy where the engine can), against the same loop with `send` \
         (a copy). DPDK: `net_ring0` in-process loopback (no kernel), rounds of 512 sent then \
         drained; Mpps of that loop without callgrind, best of 3. `batch 32`: `recv_batch` / \
         `send_batch` with 32 slots. Raw = the engine's own loop (xtask/raw, `raw-pcap`). \
         The last column: the largest entries of nethuns' profile (self cost, crate/file: \
         function) beyond the same entries of the baseline's, instructions per packet.\n",
        machine()
    )
}

/// The instruction-cost section: preamble, table, targets, the rows below target.
pub fn cost(rows: &[CostRow]) -> String {
    let mut md = cost_preamble();
    md += "\n| backend | path | nethuns instr/pkt | baseline | baseline instr/pkt | gap | nethuns instr/empty poll | baseline instr/empty poll | ratio | Mpps nethuns / baseline | beyond the baseline (instr/pkt) |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n";
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(
                md,
                "| {} | {} | error: {} |||||||||",
                r.backend,
                r.label(),
                e.replace('\n', " ").replace('|', "/")
            );
            continue;
        }
        let gap = match (r.ours, r.raw) {
            (Some(o), Some(x)) => format!("{:+.1}", o - x),
            _ => "-".into(),
        };
        let ratio = match (r.ours_empty, r.raw_empty) {
            (Some(o), Some(x)) if x > 0.0 => format!("{:.2}×", o / x),
            _ => "-".into(),
        };
        let mpps = match (r.ours_mpps, r.raw_mpps) {
            (Some(o), Some(x)) => format!("{o:.2} / {x:.2}"),
            _ => "-".into(),
        };
        let top: Vec<String> = r
            .top
            .iter()
            .take(TABLE_TOP)
            .map(|(n, v)| format!("{n} {v:.1}"))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {gap} | {} | {} | {ratio} | {mpps} | {} |",
            r.backend,
            r.label(),
            f(r.ours),
            r.baseline(),
            f(r.raw),
            f(r.ours_empty),
            f(r.raw_empty),
            top.join("; ")
        );
    }
    md += "\nTargets: receive ≤ raw + 15 instructions per packet (pcap ≤ raw + 40), an empty poll \
           ≤ 1.2 × raw, transmit ≤ raw + 15; in bursts of 32 ≤ raw + 5; `fwd` has none (it \
           shows what zero-copy saves).\n";
    let misses: Vec<String> = rows.iter().flat_map(CostRow::misses).collect();
    if misses.is_empty() {
        md += "Below target: none.\n";
    } else {
        md += "\nBelow target:\n\n";
        for m in misses {
            let _ = writeln!(md, "- {m}");
        }
    }
    md
}

/// `0.123 (0.100–0.140)`, then for receive rows the offered load and the fraction received.
fn fmt_mpps(v: &[Sample]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (m, lo, hi) = stats(&v.iter().map(|s| s.pps).collect::<Vec<_>>());
    let mut out = format!("{:.3} ({:.3}–{:.3})", m / 1e6, lo / 1e6, hi / 1e6);
    // A receive rate is read against what was sent in the same run.
    if v.iter().all(|s| s.offered > 0.0) {
        let o = median(v, |s| s.offered);
        let (f, flo, fhi) = stats(&v.iter().map(|s| s.pps / s.offered).collect::<Vec<_>>());
        out += &format!(" of {:.3} offered: {f:.2} ({flo:.2}–{fhi:.2})", o / 1e6);
    }
    out
}

fn per_pkt_allocs(v: &[Sample]) -> String {
    let (a, p): (f64, f64) = v
        .iter()
        .fold((0.0, 0.0), |(a, p), s| (a + s.allocs, p + s.pkts));
    if p == 0.0 {
        "-".into()
    } else {
        format!("{:.4}", a / p)
    }
}

/// The veth section: preamble, table, targets, rows below target, the micro-benchmarks.
pub fn veth(rows: &[Row], micro: &[(String, f64)], cfg: &Cfg) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {}. {} repetitions of {} s each (forwarding: {}), alternating; median \
         (min–max). Generator pinned to CPU 0, receiver to CPU 1, the receiving veth's RPS \
         steered to CPU 1. A receive rate is followed by the generator's rate in the same \
         runs (offered) and the fraction of it received, median (min–max).\n",
        machine(),
        cfg.reps,
        cfg.seconds,
        cfg.fwd_reps
    );
    let _ = writeln!(md, "| backend | test | frame | nethuns Mpps | baseline | baseline Mpps | ratio | Gbit/s | CPU s | allocs/pkt |");
    let _ = writeln!(md, "|---|---|---:|---:|---|---:|---:|---:|---:|---:|");
    let mut below = vec![];
    for r in rows {
        if let (Some(e), true) = (&r.error, r.ours.is_empty()) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | failed: {} | | | | | | |",
                r.backend,
                r.test.label(),
                r.size,
                e.replace('|', "/")
            );
            continue;
        }
        let ratio = r.ratio();
        let ratio_s = if r.base.is_empty() {
            "-".to_string()
        } else {
            format!("{ratio:.3}")
        };
        if let (Some(t), true) = (r.test.target(), r.below_target()) {
            let prof = match &r.profile {
                // Relative to the workspace (results/…), else where it is.
                Some(p) => format!(
                    ", profile: {}",
                    p.strip_prefix(util::root()).unwrap_or(p).display()
                ),
                None => String::new(),
            };
            below.push(format!(
                "{} {} {} B ({ratio:.3} < {t}{prof})",
                r.backend,
                r.test.label(),
                r.size
            ));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.2} | {} |",
            r.backend,
            r.test.label(),
            r.size,
            fmt_mpps(&r.ours),
            r.base_name,
            fmt_mpps(&r.base),
            ratio_s,
            median(&r.ours, |s| s.bps) / 1e9,
            median(&r.ours, |s| s.cpu),
            per_pkt_allocs(&r.ours)
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: nethuns ≥ 0.97 × the raw engine (rx, tx); AF_XDP receive ≥ 0.8 × the \
         XDP-drop ceiling; 0 allocations per packet. Forwarding rows compare nethuns with \
         itself (zero-copy `send_payload` against a copying `send`; the channel API's two \
         threads against one); no target."
    );
    if below.is_empty() {
        let _ = writeln!(md, "Below target: none.");
    } else {
        let _ = writeln!(md, "Below target: {}.", below.join(", "));
    }
    // AF_PACKET against libpcap, same traffic (both nethuns backends).
    let med_rx = |b: Backend, size: usize| {
        rows.iter()
            .find(|r| r.backend == b && r.test == Test::Rx && r.size == size)
            .map(|r| median(&r.ours, |s| s.pps))
            .filter(|v| *v > 0.0)
    };
    for &size in &cfg.sizes {
        if let (Some(a), Some(p)) = (med_rx(Backend::AfPacket, size), med_rx(Backend::Pcap, size)) {
            let _ = writeln!(
                md,
                "AF_PACKET receive vs pcap receive, {size} B: {:.3} vs {:.3} Mpps ({:.2}×).",
                a / 1e6,
                p / 1e6,
                a / p
            );
        }
    }
    if !micro.is_empty() {
        let _ = writeln!(
            md,
            "\nCore machinery (criterion):\n\n| benchmark | ns/iter |\n|---|---:|"
        );
        for (n, ns) in micro {
            let _ = writeln!(md, "| {n} | {ns} |");
        }
    }
    md
}

/// Replaces the README's section `tag` (between `<!-- tag:start -->` and `<!-- tag:end -->`)
/// with `md` and its plot `results/svg`; appends the section if the markers are missing.
pub fn update_readme(md: &str, tag: &str, svg: &str) -> Result<(), String> {
    let path = util::root().join("README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    std::fs::write(&path, splice(&text, md, tag, svg)).map_err(|e| e.to_string())
}

fn splice(text: &str, md: &str, tag: &str, svg: &str) -> String {
    let (start, end) = (
        format!("<!-- {tag}:start -->"),
        format!("<!-- {tag}:end -->"),
    );
    let (start, end) = (start.as_str(), end.as_str());
    let body = format!("{start}\n{md}\n![{tag} plot](results/{svg})\n{end}");
    match (text.find(start), text.find(end)) {
        (Some(s), Some(e)) if e > s => format!("{}{}{}", &text[..s], body, &text[e + end.len()..]),
        _ => format!("{text}\n## Benchmark results\n\n{body}\n"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_section_is_replaced_between_its_markers() {
        let t = "a\n<!-- cost:start -->\nold\n<!-- cost:end -->\nb\n";
        let n = super::splice(t, "new", "cost", "cost.svg");
        assert_eq!(
            n,
            "a\n<!-- cost:start -->\nnew\n![cost plot](results/cost.svg)\n<!-- cost:end -->\nb\n"
        );
        assert!(super::splice("x", "new", "cost", "c.svg").contains("## Benchmark results"));
    }
}
