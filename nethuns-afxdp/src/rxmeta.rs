//! XDP RX metadata: the receive timestamp and hash the driver knows, written by the steering
//! program into the frame's metadata area and read back by [`Sock`](crate::Sock).
//!
//! The kernel (6.3+) lets an XDP program ask the driver for a frame's hardware RX timestamp
//! and RX hash through two kfuncs, `bpf_xdp_metadata_rx_timestamp` and
//! `bpf_xdp_metadata_rx_hash`. Only a program *bound to the device* (loaded with
//! `prog_ifindex` and `BPF_F_XDP_DEV_BOUND_ONLY`) reaches the driver's implementation; the
//! kernel refuses such a program in generic (SKB) mode, so the metadata program is used in
//! native mode only. Its calls carry the kfuncs' BTF ids, looked up in the kernel's own BTF
//! (`/sys/kernel/btf/vmlinux`). The program reserves [`META_LEN`] bytes in front of the
//! frame with `bpf_xdp_adjust_meta`, stores what the kfuncs returned there, and redirects as
//! the plain program does; AF_XDP copies the metadata area along with the frame (copy and
//! zero-copy mode alike), so the bytes sit just before the frame in the UMEM.
//!
//! What a driver answers: veth returns the skb's hardware stamp (zero unless a NIC stamped the
//! skb before it entered the veth, so none in practice) and the skb's flow hash (computed
//! from the IP/L4 header when the stack had none); drivers without the kfuncs answer
//! `EOPNOTSUPP`, which shows as `None`. Where the driver gives no timestamp the program takes
//! a software one (`bpf_ktime_get_tai_ns`, when XDP saw the frame, converted to the epoch), as
//! AF_PACKET falls back to software stamps; the metadata says which it is. A kernel without the kfuncs (before 6.3, or without
//! BTF) gets the plain program, and [`Sock::rx_metadata`](crate::Sock::rx_metadata) says why.

use std::io::{self, Read};
use std::sync::OnceLock;

use crate::abi::{
    insn, Insn, BPF_FUNC_REDIRECT_MAP, BPF_PSEUDO_MAP_FD, XDP_MD_RX_QUEUE_INDEX, XDP_PASS,
};

/// Bytes the program reserves in front of the frame: timestamp (u64), hash (u32), hash type
/// (u32), validity bytes (u32), magic (u32).
pub(crate) const META_LEN: usize = 24;
/// Marks metadata this program wrote (the user side clears it after reading, so a frame whose
/// program run reserved no metadata is never read with a previous frame's).
pub(crate) const META_MAGIC: u32 = 0x4e48_4d44;

const BPF_FUNC_XDP_ADJUST_META: i32 = 54;
const BPF_FUNC_KTIME_GET_TAI_NS: i32 = 208;
/// Timestamp source byte: the driver's stamp.
const TS_DRIVER: u8 = 1;
/// Timestamp source byte: a software stamp taken by the program.
const TS_SOFTWARE: u8 = 2;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_META: i16 = 8;

/// The two kfuncs' BTF ids in the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kfuncs {
    pub(crate) rx_timestamp: u32,
    pub(crate) rx_hash: u32,
}

/// The kfuncs' ids, or why there are none (read once per process).
pub(crate) fn kfuncs() -> Result<Kfuncs, String> {
    static IDS: OnceLock<Result<Kfuncs, String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let path = "/sys/kernel/btf/vmlinux";
        let mut btf = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut btf))
            .map_err(|e| format!("reading {path}: {e} (kernel without BTF)"))?;
        let ids = btf_func_ids(
            &btf,
            &["bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash"],
        )
        .map_err(|e| format!("{path}: {e}"))?;
        match (ids[0], ids[1]) {
            (Some(rx_timestamp), Some(rx_hash)) => Ok(Kfuncs {
                rx_timestamp,
                rx_hash,
            }),
            _ => Err(format!(
                "kernel {} has no XDP RX metadata kfuncs (bpf_xdp_metadata_rx_timestamp/_rx_hash \
                 arrived in Linux 6.3)",
                crate::features::kernel_release()
            )),
        }
    })
    .clone()
}

/// The type ids of the `BTF_KIND_FUNC` entries named `names` in the BTF blob `btf`.
pub(crate) fn btf_func_ids(btf: &[u8], names: &[&str]) -> io::Result<Vec<Option<u32>>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("BTF: {what}"));
    let u32_at = |at: usize| -> io::Result<u32> {
        btf.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
            .ok_or_else(|| bad("truncated"))
    };
    if btf.len() < 24 || btf[0..2] != [0x9f, 0xeb] {
        return Err(bad("not little-endian BTF (magic 0xeb9f)"));
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let types = hdr_len
        .checked_add(type_off)
        .ok_or_else(|| bad("offsets"))?;
    let types_end = types.checked_add(type_len).ok_or_else(|| bad("offsets"))?;
    let strs = hdr_len.checked_add(str_off).ok_or_else(|| bad("offsets"))?;
    let strs_end = strs.checked_add(str_len).ok_or_else(|| bad("offsets"))?;
    if types_end > btf.len() || strs_end > btf.len() {
        return Err(bad("sections beyond the blob"));
    }
    let name_at = |off: u32| -> &[u8] {
        let s = &btf[(strs + off as usize).min(strs_end)..strs_end];
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    };
    let mut found = vec![None; names.len()];
    let (mut at, mut id) = (types, 1u32);
    while at + 12 <= types_end {
        let (name_off, info) = (u32_at(at)?, u32_at(at + 4)?);
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        if kind == 12 {
            // BTF_KIND_FUNC
            let name = name_at(name_off);
            for (i, n) in names.iter().enumerate() {
                if found[i].is_none() && name == n.as_bytes() {
                    found[i] = Some(id);
                }
            }
        }
        let extra = match kind {
            1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
            3 => 12,              // ARRAY
            4 | 5 => 12 * vlen,   // STRUCT, UNION
            6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
            15 | 19 => 12 * vlen, // DATASEC, ENUM64
            0 | 2 | 7..=12 | 16 | 18 => 0,
            k => return Err(bad(&format!("unknown kind {k} at type {id}"))),
        };
        at += 12 + extra;
        id += 1;
    }
    Ok(found)
}

/// The steering program with RX metadata: reserve [`META_LEN`] bytes of metadata, fill them
/// from the kfuncs (a software stamp, `bpf_ktime_get_tai_ns`, where the driver has no
/// timestamp), then redirect to `xsks[rx_queue_index]` (or pass) as the plain program.
///
/// ```text
///  0  r6 = r1                          ; ctx
///  1  r2 = -24
///  2  call bpf_xdp_adjust_meta
///  3  if r0 != 0 goto redirect         ; no room: the frame goes without metadata
///  4  r7 = *(u32 *)(r6 + data_meta)
///  5  r3 = *(u32 *)(r6 + data)
///  6  r4 = r7
///  7  r4 += 24
///  8  if r4 > r3 goto redirect         ; bounds check for the verifier
///  9  *(u64 *)(r7 + 0) = 0             ; timestamp
/// 10  *(u64 *)(r7 + 8) = 0             ; hash, hash type
/// 11  *(u32 *)(r7 + 16) = 0            ; timestamp source, hash valid
/// 12  *(u32 *)(r7 + 20) = MAGIC
/// 13  r1 = r6
/// 14  r2 = r7
/// 15  call bpf_xdp_metadata_rx_timestamp(ctx, &meta.timestamp)
/// 16  if r0 != 0 goto software
/// 17  r1 = *(u64 *)(r7 + 0)
/// 18  if r1 == 0 goto software         ; "success" without a stamp
/// 19  *(u8 *)(r7 + 16) = 1             ; the driver's stamp
/// 20  goto hash
/// software:
/// 21  call bpf_ktime_get_tai_ns
/// 22  *(u64 *)(r7 + 0) = r0
/// 23  *(u8 *)(r7 + 16) = 2             ; a software stamp (CLOCK_TAI)
/// hash:
/// 24  r1 = r6
/// 25  r2 = r7
/// 26  r2 += 8
/// 27  r3 = r7
/// 28  r3 += 12
/// 29  call bpf_xdp_metadata_rx_hash(ctx, &meta.hash, &meta.hash_type)
/// 30  if r0 != 0 goto +1
/// 31  *(u8 *)(r7 + 17) = 1
/// redirect:
/// 32  r2 = *(u32 *)(r6 + rx_queue_index)
/// 33  r1 = map_fd ll
/// 35  r3 = XDP_PASS
/// 36  call bpf_redirect_map
/// 37  exit
/// ```
///
/// (Before Linux 6.5 `bpf_xdp_metadata_rx_hash` takes no hash type; the verifier checks only
/// the arguments a kfunc declares, so the extra `r3` is harmless there.)
pub(crate) fn metadata_program(map_fd: i32, k: Kfuncs) -> Vec<Insn> {
    let kfunc = |id: u32| insn(0x85, 0, BPF_PSEUDO_KFUNC_CALL, 0, id as i32);
    vec![
        insn(0xbf, 6, 1, 0, 0),                         // r6 = r1
        insn(0xb7, 2, 0, 0, -(META_LEN as i32)),        // r2 = -24
        insn(0x85, 0, 0, 0, BPF_FUNC_XDP_ADJUST_META),  // call
        insn(0x55, 0, 0, 28, 0),                        // if r0 != 0 goto redirect
        insn(0x61, 7, 6, XDP_MD_DATA_META, 0),          // r7 = data_meta
        insn(0x61, 3, 6, XDP_MD_DATA, 0),               // r3 = data
        insn(0xbf, 4, 7, 0, 0),                         // r4 = r7
        insn(0x07, 4, 0, 0, META_LEN as i32),           // r4 += 24
        insn(0x2d, 4, 3, 23, 0),                        // if r4 > r3 goto redirect
        insn(0x7a, 7, 0, 0, 0),                         // *(u64 *)(r7 + 0) = 0
        insn(0x7a, 7, 0, 8, 0),                         // *(u64 *)(r7 + 8) = 0
        insn(0x62, 7, 0, 16, 0),                        // *(u32 *)(r7 + 16) = 0
        insn(0x62, 7, 0, 20, META_MAGIC as i32),        // *(u32 *)(r7 + 20) = MAGIC
        insn(0xbf, 1, 6, 0, 0),                         // r1 = r6
        insn(0xbf, 2, 7, 0, 0),                         // r2 = r7
        kfunc(k.rx_timestamp),                          // call rx_timestamp
        insn(0x55, 0, 0, 4, 0),                         // if r0 != 0 goto software
        insn(0x79, 1, 7, 0, 0),                         // r1 = *(u64 *)(r7 + 0)
        insn(0x15, 1, 0, 2, 0),                         // if r1 == 0 goto software
        insn(0x72, 7, 0, 16, TS_DRIVER as i32),         // *(u8 *)(r7 + 16) = 1
        insn(0x05, 0, 0, 3, 0),                         // goto hash
        insn(0x85, 0, 0, 0, BPF_FUNC_KTIME_GET_TAI_NS), // software: call
        insn(0x7b, 7, 0, 0, 0),                         // *(u64 *)(r7 + 0) = r0
        insn(0x72, 7, 0, 16, TS_SOFTWARE as i32),       // *(u8 *)(r7 + 16) = 2
        insn(0xbf, 1, 6, 0, 0),                         // hash: r1 = r6
        insn(0xbf, 2, 7, 0, 0),                         // r2 = r7
        insn(0x07, 2, 0, 0, 8),                         // r2 += 8
        insn(0xbf, 3, 7, 0, 0),                         // r3 = r7
        insn(0x07, 3, 0, 0, 12),                        // r3 += 12
        kfunc(k.rx_hash),                               // call rx_hash
        insn(0x55, 0, 0, 1, 0),                         // if r0 != 0 goto +1
        insn(0x72, 7, 0, 17, 1),                        // *(u8 *)(r7 + 17) = 1
        insn(0x61, 2, 6, XDP_MD_RX_QUEUE_INDEX, 0),     // redirect: r2 = rx_queue_index
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),    // r1 = map ll
        insn(0, 0, 0, 0, 0),
        insn(0xb7, 3, 0, 0, XDP_PASS),              // r3 = XDP_PASS
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP), // call bpf_redirect_map
        insn(0x95, 0, 0, 0, 0),                     // exit
    ]
}

/// What the metadata area in front of a received frame holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxMeta {
    /// The driver's RX timestamp.
    pub(crate) driver_ts: Option<u64>,
    /// The software stamp the program took (`CLOCK_TAI`, nanoseconds).
    pub(crate) tai_ts: Option<u64>,
    /// The driver's RX hash.
    pub(crate) hash: Option<u32>,
}

/// Reads the metadata area `area` (the [`META_LEN`] bytes before a received frame) and
/// clears its magic, so that the same bytes are never read twice; all `None` where the
/// program wrote none.
#[inline]
pub(crate) fn take(area: &mut [u8; META_LEN]) -> RxMeta {
    let magic = u32::from_ne_bytes([area[20], area[21], area[22], area[23]]);
    if magic != META_MAGIC {
        return RxMeta::default();
    }
    area[20..24].fill(0);
    let ts = u64::from_ne_bytes(area[0..8].try_into().unwrap_or([0; 8]));
    let hash = u32::from_ne_bytes([area[8], area[9], area[10], area[11]]);
    RxMeta {
        driver_ts: (area[16] == TS_DRIVER).then_some(ts),
        tai_ts: (area[16] == TS_SOFTWARE).then_some(ts),
        hash: (area[17] == 1).then_some(hash),
    }
}

/// `CLOCK_REALTIME − CLOCK_TAI` in nanoseconds, whole seconds (0 where no TAI offset is set,
/// −37 s where NTP set it): what turns the program's software stamps into epoch time.
pub(crate) fn tai_to_epoch_ns() -> i64 {
    let (realtime, tai) = crate::sys::realtime_and_tai_ns();
    let d = realtime - tai;
    (d as f64 / 1e9).round() as i64 * 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_redirect() {
        let p = metadata_program(
            3,
            Kfuncs {
                rx_timestamp: 10,
                rx_hash: 11,
            },
        );
        assert_eq!(p.len(), 38);
        let target = |i: usize| i + 1 + p[i].off as usize;
        let (redirect, software, hash) = (32, 21, 24);
        assert_eq!(target(3), redirect);
        assert_eq!(target(8), redirect);
        assert_eq!(target(16), software);
        assert_eq!(target(18), software);
        assert_eq!(target(20), hash);
        assert_eq!(p[software].imm, BPF_FUNC_KTIME_GET_TAI_NS);
        assert_eq!(p[redirect].off, XDP_MD_RX_QUEUE_INDEX);
        assert_eq!(p[15].imm, 10);
        assert_eq!(p[29].imm, 11);
        assert_eq!(p[15].regs >> 4, BPF_PSEUDO_KFUNC_CALL);
    }

    #[test]
    fn metadata_is_read_once() {
        let mut a = [0u8; META_LEN];
        a[0..8].copy_from_slice(&5u64.to_ne_bytes());
        a[8..12].copy_from_slice(&7u32.to_ne_bytes());
        a[16] = TS_SOFTWARE;
        a[17] = 1;
        a[20..24].copy_from_slice(&META_MAGIC.to_ne_bytes());
        let m = take(&mut a);
        assert_eq!((m.driver_ts, m.tai_ts, m.hash), (None, Some(5), Some(7)));
        assert_eq!(take(&mut a), RxMeta::default());
    }

    #[test]
    fn btf_of_this_kernel_parses() {
        let Ok(btf) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("SKIPPED btf_of_this_kernel_parses: no /sys/kernel/btf/vmlinux");
            return;
        };
        let ids = btf_func_ids(&btf, &["bpf_xdp_metadata_rx_hash", "no_such_function_x"]).unwrap();
        assert_eq!(ids[1], None);
        eprintln!("bpf_xdp_metadata_rx_hash: {:?}", ids[0]);
        // Truncated or garbage input: an error or nothing found, never a panic.
        for n in [0, 10, 24, 100, 4096] {
            let _ = btf_func_ids(&btf[..n.min(btf.len())], &["x"]);
        }
    }

    #[test]
    fn arbitrary_btf_never_panics() {
        let mut next = nethuns_testnet::pseudo_random(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..20_000 {
            let len = 24 + (next() % 300) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            b[0..2].copy_from_slice(&[0x9f, 0xeb]);
            // A header that points inside the blob, so the type walk runs on garbage.
            b[4..8].copy_from_slice(&24u32.to_le_bytes());
            b[8..12].copy_from_slice(&0u32.to_le_bytes());
            b[12..16].copy_from_slice(&((len as u32 - 24) / 2).to_le_bytes());
            b[16..20].copy_from_slice(&((len as u32 - 24) / 2).to_le_bytes());
            b[20..24].copy_from_slice(&((len as u32 - 24) / 2).to_le_bytes());
            let _ = btf_func_ids(&b, &["bpf_xdp_metadata_rx_hash"]);
        }
    }
}
