//! Callgrind output files: the total, the flat profile attributed to `crate/file: function`,
//! and the difference of two profiles (what nethuns' loop spends that the raw loop has no
//! counterpart of).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Total instructions of a callgrind output file.
pub fn totals(out: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{}: no totals line", out.display()))
}

/// The flat (self-cost) profile of a callgrind output file: (`crate/file: function`,
/// instructions), entries of the same name summed.
pub fn flat(out: &Path) -> Vec<(String, u64)> {
    let Ok(o) = Command::new("callgrind_annotate").arg(out).output() else {
        return vec![];
    };
    let text = String::from_utf8_lossy(&o.stdout);
    let mut v: Vec<(String, u64)> = vec![];
    let mut in_table = false;
    for l in text.lines() {
        if l.contains("file:function") {
            in_table = true;
            continue;
        }
        if !in_table || l.starts_with("---") {
            continue;
        }
        if l.trim().is_empty() {
            if !v.is_empty() {
                break;
            }
            continue;
        }
        let mut it = l.trim().splitn(2, ' ');
        let (Some(n), Some(rest)) = (it.next(), it.next()) else {
            continue;
        };
        let Ok(n) = n.replace(',', "").parse::<u64>() else {
            continue;
        };
        let name = short_name(rest.split_once(')').map_or(rest, |(_, r)| r).trim());
        match v.iter_mut().find(|(k, _)| *k == name) {
            Some(e) => e.1 += n,
            None => v.push((name, n)),
        }
    }
    v
}

/// `…/nethuns-afxdp/src/ring/mod.rs:<nethuns_afxdp::io::Sock as nethuns_core::Socket>::recv
/// [bin]` → `afxdp/ring/mod.rs: Sock::recv`: the crate (the folder above `src`), the file
/// below `src`, and the function as `Type::name` without generic arguments.
pub fn short_name(s: &str) -> String {
    let s = s.split(" [").next().unwrap_or(s);
    let (file, func) = s.split_once(':').unwrap_or(("???", s));
    let func = short_fn(func);
    if file == "???" {
        return func;
    }
    let parts: Vec<&str> = file.split('/').collect();
    let (krate, rel) = match parts.iter().rposition(|p| *p == "src") {
        Some(i) if i > 0 => (parts[i - 1], parts[i + 1..].join("/")),
        _ => ("", parts[parts.len().saturating_sub(2)..].join("/")),
    };
    let krate = krate.trim_start_matches("nethuns-");
    if krate.is_empty() {
        format!("{rel}: {func}")
    } else {
        format!("{krate}/{rel}: {func}")
    }
}

/// `<a::B as c::D>::f` and `a::<impl c::D for a::B>::f` → `B::f`; `a::b::c<T>` → `b::c`.
fn short_fn(f: &str) -> String {
    let mut out = String::new();
    let mut rest = f;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        // The matching `>`.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (j, c) in rest[i..].char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &rest[(i + 1).min(end)..end];
        // A qualified path (`<A as B>`, `<impl B for A>`) names the type A; generic
        // arguments after a name are left out.
        if out.is_empty() || out.ends_with("::") {
            let ty = if let Some(t) = inner.strip_prefix("impl ") {
                t.rsplit_once(" for ").map_or(t, |(_, ty)| ty)
            } else {
                inner.split_once(" as ").map_or(inner, |(ty, _)| ty)
            };
            out.push_str(&short_fn(ty));
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out.push_str(rest);
    let segs: Vec<&str> = out.split("::").filter(|s| !s.is_empty()).collect();
    segs[segs.len().saturating_sub(2)..].join("::")
}

/// The largest entries of `ours` (per packet over `ours_n` packets) beyond the same entry of
/// `base` (per packet over `base_n`): libc, the kernel's vDSO and the engine's library count
/// on both sides and cancel; what is left is the abstraction's own work. At most `k` entries
/// of 0.5 instructions per packet or more, largest first.
pub fn difference(
    ours: &[(String, u64)],
    ours_n: u64,
    base: &[(String, u64)],
    base_n: u64,
    k: usize,
) -> Vec<(String, f64)> {
    let per = |n: u64, d: u64| n as f64 / d.max(1) as f64;
    let base: HashMap<&str, f64> = base
        .iter()
        .map(|(name, n)| (name.as_str(), per(*n, base_n)))
        .collect();
    let mut d: Vec<(String, f64)> = ours
        .iter()
        .map(|(name, n)| {
            let b = base.get(name.as_str()).copied().unwrap_or(0.0);
            (name.clone(), per(*n, ours_n) - b)
        })
        .filter(|(_, v)| *v >= 0.5)
        .collect();
    d.sort_by(|a, b| b.1.total_cmp(&a.1));
    d.truncate(k);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_the_difference_cancels_shared_entries() {
        assert_eq!(
            short_name("/w/nethuns-afpacket/src/rx.rs:nethuns_core::socket::Socket::recv [/x]"),
            "afpacket/rx.rs: Socket::recv"
        );
        assert_eq!(
            short_name(
                "/w/nethuns-afxdp/src/ring/mod.rs:<nethuns_afxdp::io::Sock as \
                 nethuns_core::socket::Socket>::recv_token"
            ),
            "afxdp/ring/mod.rs: Sock::recv_token"
        );
        assert_eq!(
            short_fn(
                "nethuns_afxdp::io::<impl nethuns_core::Socket for nethuns_afxdp::io::Sock>::send"
            ),
            "Sock::send"
        );
        assert_eq!(
            short_fn("core::ptr::drop_in_place<a::B<c::D>>"),
            "ptr::drop_in_place"
        );
        assert_eq!(
            short_name("/w/nethuns/examples/cost.rs:cost::cost_drain<nethuns_afxdp::io::Sock>"),
            "examples/cost.rs: cost::cost_drain"
        );
        assert_eq!(short_name("???:memcpy [/lib/libc.so.6]"), "memcpy");
        let ours = vec![
            ("memcpy".to_string(), 2000),
            ("a/b.rs: f".to_string(), 3000),
        ];
        let raw = vec![("memcpy".to_string(), 1500)];
        let d = difference(&ours, 100, &raw, 100, 5);
        assert_eq!(
            d,
            vec![("a/b.rs: f".to_string(), 30.0), ("memcpy".to_string(), 5.0)]
        );
    }
}
