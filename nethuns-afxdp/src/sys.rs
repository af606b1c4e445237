//! The `bpf(2)` calls this crate needs, declared by hand (no libbpf): create an XSKMAP, load
//! the six-instruction redirect program, attach it with a bpf_link, update the map.
//!
//! Every call goes through one `bpf_attr` image (`union bpf_attr` is 144 bytes in the UAPI; the
//! kernel accepts a shorter prefix and requires unused bytes to be zero). Offsets are the
//! UAPI's, checked by the layout tests below against `linux/bpf.h` values.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_FREEZE: i32 = 22;
const BPF_PROG_LOAD: i32 = 5;
#[cfg(test)]
const BPF_PROG_TEST_RUN: i32 = 10;
const BPF_LINK_CREATE: i32 = 28;
const BPF_LINK_DETACH: i32 = 34;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
const BPF_LINK_GET_FD_BY_ID: i32 = 30;
const BPF_LINK_GET_NEXT_ID: i32 = 31;
const BPF_LINK_TYPE_XDP: u32 = 6;

pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
pub(crate) const BPF_FUNC_REDIRECT_MAP: i32 = 51;
pub(crate) const BPF_PSEUDO_MAP_FD: u8 = 1;
pub(crate) const XDP_PASS: i32 = 2;
/// `offsetof(struct xdp_md, rx_queue_index)`.
pub(crate) const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// `prog_flags`: the program only runs on the device of `prog_ifindex` (not offloaded), and
/// may call that driver's XDP metadata kfuncs.
pub(crate) const BPF_F_XDP_DEV_BOUND_ONLY: u32 = 1 << 6;
/// `prog_flags`: the program understands multi-buffer frames (`xdp.frags`), which lets it be
/// attached where frames can exceed a page (native mode with a large MTU) and see such frames
/// whole in generic mode.
pub(crate) const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

/// The `bpf_attr` image: 144 zeroed bytes, 8-byte aligned.
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Self {
        Attr([0; 144])
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn bytes_at(&mut self, off: usize, b: &[u8]) -> &mut Self {
        self.0[off..off + b.len()].copy_from_slice(b);
        self
    }
}

fn bpf(cmd: i32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a live, writable 144-byte buffer, the size passed is its size, and the
    // pointers stored inside it (instructions, license, log, key, value) point to memory that
    // outlives this call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: i64) -> OwnedFd {
    // SAFETY: a successful BPF_MAP_CREATE / BPF_PROG_LOAD / BPF_LINK_CREATE returns a new file
    // descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

/// Creates an XSKMAP (`u32` queue index -> socket fd) of `max_entries` entries.
pub(crate) fn xskmap_create(max_entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, BPF_MAP_TYPE_XSKMAP)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, max_entries)
        .bytes_at(28, b"nethuns_xsks");
    bpf(BPF_MAP_CREATE, &mut a).map(fd_from)
}

/// Sets `map[key] = value_fd` in an XSKMAP.
pub(crate) fn xskmap_set(map: &OwnedFd, key: u32, value_fd: i32) -> io::Result<()> {
    let k = key;
    let v = value_fd as u32;
    let mut a = Attr::new();
    a.u32_at(0, map.as_raw_fd() as u32)
        .u64_at(8, &k as *const u32 as u64)
        .u64_at(16, &v as *const u32 as u64)
        .u64_at(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    pub(crate) regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

impl Insn {
    #[cfg(test)]
    pub(crate) fn code(&self) -> u8 {
        self.code
    }
    #[cfg(test)]
    pub(crate) fn off(&self) -> i16 {
        self.off
    }
    pub(crate) fn set_off(&mut self, off: i16) {
        self.off = off;
    }
}

pub(crate) const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The redirect program: every frame arriving on queue `q` goes to the socket at `xsks[q]`, or
/// to the kernel stack (`XDP_PASS`) when no socket is there.
///
/// ```text
/// r2 = *(u32 *)(r1 + offsetof(xdp_md, rx_queue_index))
/// r1 = map_fd ll
/// r3 = XDP_PASS
/// call bpf_redirect_map
/// exit
/// ```
pub(crate) fn redirect_program(map_fd: i32) -> [Insn; 6] {
    [
        insn(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0), // BPF_LDX | BPF_W | BPF_MEM
        insn(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd), // BPF_LD | BPF_DW | BPF_IMM
        insn(0, 0, 0, 0, 0),
        insn(0xb7, 3, 0, 0, XDP_PASS), // BPF_ALU64 | BPF_MOV | BPF_K
        insn(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP), // BPF_JMP | BPF_CALL
        insn(0x95, 0, 0, 0, 0),        // BPF_JMP | BPF_EXIT
    ]
}

/// Loads XDP program `insns` with `prog_flags`, bound to device `ifindex` when given (with
/// [`BPF_F_XDP_DEV_BOUND_ONLY`] in `prog_flags`). On failure the verifier's log is appended to
/// the error message.
pub(crate) fn load_xdp_program(
    insns: &[Insn],
    prog_flags: u32,
    ifindex: Option<u32>,
) -> io::Result<OwnedFd> {
    load_xdp_as(insns, c"Dual BSD/GPL", prog_flags, ifindex, b"nethuns_xsk")
}

/// [`load_xdp_program`] under `license`, named `name` (at most 15 bytes kept).
pub(crate) fn load_xdp_as(
    insns: &[Insn],
    license: &std::ffi::CStr,
    prog_flags: u32,
    ifindex: Option<u32>,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let name = &name[..name.len().min(15)];
    let load = |log: &mut [u8]| {
        let mut a = Attr::new();
        a.u32_at(0, BPF_PROG_TYPE_XDP)
            .u32_at(4, insns.len() as u32)
            .u64_at(8, insns.as_ptr() as u64)
            .u64_at(16, license.as_ptr() as u64)
            .u32_at(24, u32::from(!log.is_empty()))
            .u32_at(28, log.len() as u32)
            .u64_at(
                32,
                if log.is_empty() {
                    0
                } else {
                    log.as_mut_ptr() as u64
                },
            )
            .u32_at(44, prog_flags)
            .bytes_at(48, name)
            .u32_at(64, ifindex.unwrap_or(0))
            .u32_at(68, BPF_XDP);
        bpf(BPF_PROG_LOAD, &mut a)
    };
    // Without a log first (a log too small for the verifier's trace fails the load by
    // itself); on failure again with one, for the message.
    match load(&mut []) {
        Ok(rc) => Ok(fd_from(rc)),
        Err(e) => {
            let mut log = vec![0u8; 256 * 1024];
            if let Ok(rc) = load(&mut log) {
                return Ok(fd_from(rc));
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            // The verifier's verdict is at the end of its trace.
            let tail: Vec<&str> = text.trim().lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(io::Error::new(
                e.kind(),
                format!("{e}; verifier log: {}", tail.join(" | ")),
            ))
        }
    }
}

/// Creates a map of `map_type` (a BPF_MAP_TYPE_*), named `name` (at most 15 bytes).
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    name: &[u8],
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, map_type)
        .u32_at(4, key_size)
        .u32_at(8, value_size)
        .u32_at(12, max_entries)
        .u32_at(16, map_flags)
        .bytes_at(28, &name[..name.len().min(15)]);
    bpf(BPF_MAP_CREATE, &mut a).map(fd_from)
}

/// Sets `map[key] = value` (byte images of the map's key and value sizes).
pub(crate) fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, map.as_raw_fd() as u32)
        .u64_at(8, key.as_ptr() as u64)
        .u64_at(16, value.as_ptr() as u64)
        .u64_at(24, 0);
    bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// Makes `map` read-only for user space (`BPF_MAP_FREEZE`, for `.rodata`).
pub(crate) fn map_freeze(map: &OwnedFd) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, map.as_raw_fd() as u32);
    bpf(BPF_MAP_FREEZE, &mut a).map(|_| ())
}

/// Runs XDP program `prog` once on `frame` (`BPF_PROG_TEST_RUN`) and returns its action.
#[cfg(test)]
pub(crate) fn prog_test_run(prog: &OwnedFd, frame: &[u8]) -> io::Result<u32> {
    let mut out = vec![0u8; frame.len() + 512];
    let mut a = Attr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(8, frame.len() as u32)
        .u32_at(12, out.len() as u32)
        .u64_at(16, frame.as_ptr() as u64)
        .u64_at(24, out.as_mut_ptr() as u64)
        .u32_at(32, 1);
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(u32::from_ne_bytes([a.0[4], a.0[5], a.0[6], a.0[7]]))
}

/// Attaches `prog` to interface `ifindex` as XDP through a bpf_link (`flags`: the mode bits).
/// The program stays attached exactly as long as the returned descriptor is open: closing it,
/// or the death of the process, detaches it.
pub(crate) fn xdp_link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(4, ifindex)
        .u32_at(8, BPF_XDP)
        .u32_at(12, flags);
    bpf(BPF_LINK_CREATE, &mut a).map(fd_from)
}

/// Detaches a bpf_link's program now (closing the last link descriptor also detaches it, but
/// the kernel does that later, from a work queue).
pub(crate) fn link_detach(link: &OwnedFd) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, link.as_raw_fd() as u32);
    bpf(BPF_LINK_DETACH, &mut a).map(|_| ())
}

/// A descriptor of the loaded program `id` (needs CAP_SYS_ADMIN / CAP_BPF).
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, id);
    bpf(BPF_PROG_GET_FD_BY_ID, &mut a).map(fd_from)
}

/// Fills `info` with `BPF_OBJ_GET_INFO_BY_FD` of `fd` (a program or a link).
fn obj_info(fd: &OwnedFd, info: &mut [u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, fd.as_raw_fd() as u32)
        .u32_at(4, info.len() as u32)
        .u64_at(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a).map(|_| ())
}

/// What `struct bpf_prog_info` says of a program: its name and the ids of its maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgInfo {
    /// The program's name (at most 15 bytes, as loaded).
    pub(crate) name: String,
    /// The maps it uses.
    pub(crate) map_ids: Vec<u32>,
}

/// The name and map ids of program `fd`.
pub(crate) fn prog_info(fd: &OwnedFd) -> io::Result<ProgInfo> {
    let mut maps = [0u32; 16];
    // struct bpf_prog_info: nr_map_ids at 52, map_ids (pointer) at 56, name[16] at 64.
    let mut info = [0u8; 256];
    info[52..56].copy_from_slice(&(maps.len() as u32).to_ne_bytes());
    info[56..64].copy_from_slice(&(maps.as_mut_ptr() as u64).to_ne_bytes());
    obj_info(fd, &mut info)?;
    let nr = u32::from_ne_bytes(info[52..56].try_into().expect("4 bytes")) as usize;
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(ProgInfo {
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        map_ids: maps[..nr.min(maps.len())].to_vec(),
    })
}

/// The XDP bpf_links of interface `ifindex` (of any namespace with that index: the caller
/// compares program ids): `(link id, program id)`.
pub(crate) fn xdp_links(ifindex: u32) -> io::Result<Vec<(u32, u32)>> {
    let mut out = vec![];
    let mut id = 0u32;
    // Bounded: link ids only grow, and the kernel has at most a few thousand links.
    for _ in 0..100_000 {
        let mut a = Attr::new();
        a.u32_at(0, id);
        match bpf(BPF_LINK_GET_NEXT_ID, &mut a) {
            Ok(_) => id = u32::from_ne_bytes(a.0[4..8].try_into().expect("4 bytes")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        let mut a = Attr::new();
        a.u32_at(0, id);
        let Ok(fd) = bpf(BPF_LINK_GET_FD_BY_ID, &mut a).map(fd_from) else {
            continue; // gone meanwhile
        };
        // struct bpf_link_info: type at 0, id at 4, prog_id at 8, xdp.ifindex at 16.
        let mut info = [0u8; 64];
        if obj_info(&fd, &mut info).is_err() {
            continue;
        }
        let u32_at = |o: usize| u32::from_ne_bytes(info[o..o + 4].try_into().expect("4 bytes"));
        if u32_at(0) == BPF_LINK_TYPE_XDP && u32_at(16) == ifindex {
            out.push((u32_at(4), u32_at(8)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_uapi() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<Attr>(), 144);
        assert_eq!(std::mem::align_of::<Attr>(), 8);
        let p = redirect_program(7);
        // ld_imm64 with the map fd in src_reg = BPF_PSEUDO_MAP_FD, dst r1
        assert_eq!(p[1].regs, 0x11);
        assert_eq!(p[1].imm, 7);
        // ldx: dst r2, src r1
        assert_eq!(p[0].regs, 0x12);
    }
}
