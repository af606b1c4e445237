//! The kernel's structs and constants this crate speaks, declared where `libc` has none: the
//! `bpf_attr` prefix of each `bpf(2)` command, the `bpf_prog_info` / `bpf_link_info` prefixes,
//! `struct bpf_insn`, `struct xdp_statistics` as the public [`XdpStatistics`]. The AF_XDP
//! structs (`xdp_desc`, `xdp_umem_reg`, `sockaddr_xdp`, `xdp_mmap_offsets`, `xdp_options`)
//! are `libc`'s. Layouts are tested below against the UAPI's offsets (`linux/bpf.h`,
//! `linux/if_xdp.h`).
//!
//! Every struct handed to the kernel has explicit padding fields, so no byte of it is
//! uninitialised (the kernel requires unused bytes to be zero).

/// One descriptor of the RX and TX rings (`struct xdp_desc`).
pub(crate) type XdpDesc = libc::xdp_desc;

pub(crate) const BPF_MAP_CREATE: i32 = 0;
pub(crate) const BPF_MAP_UPDATE_ELEM: i32 = 2;
pub(crate) const BPF_PROG_LOAD: i32 = 5;
#[cfg(test)]
pub(crate) const BPF_PROG_TEST_RUN: i32 = 10;
pub(crate) const BPF_PROG_GET_FD_BY_ID: i32 = 13;
pub(crate) const BPF_OBJ_GET_INFO_BY_FD: i32 = 15;
pub(crate) const BPF_MAP_FREEZE: i32 = 22;
pub(crate) const BPF_LINK_CREATE: i32 = 28;
pub(crate) const BPF_LINK_GET_FD_BY_ID: i32 = 30;
pub(crate) const BPF_LINK_GET_NEXT_ID: i32 = 31;
pub(crate) const BPF_LINK_DETACH: i32 = 34;
pub(crate) const BPF_LINK_TYPE_XDP: u32 = 6;

pub(crate) const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
pub(crate) const BPF_XDP: u32 = 37;
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

/// The `bpf_attr` prefix of one command: what `bpf(2)` is given (with its own size; the
/// kernel zero-extends a shorter attr).
///
/// # Safety
/// `Self` is `#[repr(C)]` plain data without implicit padding, and every pointer stored in it
/// (as a `u64`) points to memory that is valid for what the command does with it.
pub(crate) unsafe trait BpfAttr {}

/// `BPF_MAP_CREATE`'s prefix (up to `map_name`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MapCreateAttr {
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) map_flags: u32,
    pub(crate) inner_map_fd: u32,
    pub(crate) numa_node: u32,
    pub(crate) map_name: [u8; 16],
}
// SAFETY: repr(C), integers and a byte array, no padding (44 bytes, align 4), no pointers.
unsafe impl BpfAttr for MapCreateAttr {}

/// `BPF_MAP_UPDATE_ELEM`'s (`map_fd`, `key`, `value`, `flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MapElemAttr {
    pub(crate) map_fd: u32,
    pub(crate) _pad: u32,
    pub(crate) key: u64,
    pub(crate) value: u64,
    pub(crate) flags: u64,
}
// SAFETY: repr(C), explicit padding; the key and value pointers are set by sys.rs from slices
// alive for the call.
unsafe impl BpfAttr for MapElemAttr {}

/// `BPF_PROG_LOAD`'s prefix (up to `expected_attach_type`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProgLoadAttr {
    pub(crate) prog_type: u32,
    pub(crate) insn_cnt: u32,
    pub(crate) insns: u64,
    pub(crate) license: u64,
    pub(crate) log_level: u32,
    pub(crate) log_size: u32,
    pub(crate) log_buf: u64,
    pub(crate) kern_version: u32,
    pub(crate) prog_flags: u32,
    pub(crate) prog_name: [u8; 16],
    pub(crate) prog_ifindex: u32,
    pub(crate) expected_attach_type: u32,
}
// SAFETY: repr(C), no padding (72 bytes); the pointers are set by sys.rs from slices alive
// for the call.
unsafe impl BpfAttr for ProgLoadAttr {}

/// `BPF_PROG_TEST_RUN`'s prefix (up to `duration`).
#[cfg(test)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TestRunAttr {
    pub(crate) prog_fd: u32,
    pub(crate) retval: u32,
    pub(crate) data_size_in: u32,
    pub(crate) data_size_out: u32,
    pub(crate) data_in: u64,
    pub(crate) data_out: u64,
    pub(crate) repeat: u32,
    pub(crate) duration: u32,
}
// SAFETY: repr(C), no padding (40 bytes); the pointers are set by sys.rs from slices alive
// for the call, `data_out` writable for `data_size_out` bytes.
#[cfg(test)]
unsafe impl BpfAttr for TestRunAttr {}

/// `BPF_LINK_CREATE`'s prefix (`prog_fd`, `target_ifindex`, `attach_type`, `flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkCreateAttr {
    pub(crate) prog_fd: u32,
    pub(crate) target_ifindex: u32,
    pub(crate) attach_type: u32,
    pub(crate) flags: u32,
}
// SAFETY: repr(C), four u32s, no pointers.
unsafe impl BpfAttr for LinkCreateAttr {}

/// The one-word commands: `BPF_MAP_FREEZE` (`map_fd`), `BPF_LINK_DETACH` (`link_fd`), and
/// `BPF_*_GET_FD_BY_ID` / `BPF_*_GET_NEXT_ID` (`start_id` / `prog_id` / `link_id`, then
/// `next_id`, which the kernel writes, and `open_flags`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IdAttr {
    pub(crate) id: u32,
    pub(crate) next_id: u32,
    pub(crate) open_flags: u32,
}
// SAFETY: repr(C), three u32s, no pointers.
unsafe impl BpfAttr for IdAttr {}

/// `BPF_OBJ_GET_INFO_BY_FD`'s (`bpf_fd`, `info_len`, `info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InfoAttr {
    pub(crate) bpf_fd: u32,
    pub(crate) info_len: u32,
    pub(crate) info: u64,
}
// SAFETY: repr(C), no padding; `info` is set by sys.rs to a struct writable for `info_len`.
unsafe impl BpfAttr for InfoAttr {}

/// `struct bpf_prog_info`'s prefix up to `name` (80 bytes; the kernel fills what fits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BpfProgInfo {
    pub(crate) prog_type: u32,
    pub(crate) id: u32,
    pub(crate) tag: [u8; 8],
    pub(crate) jited_prog_len: u32,
    pub(crate) xlated_prog_len: u32,
    pub(crate) jited_prog_insns: u64,
    pub(crate) xlated_prog_insns: u64,
    pub(crate) load_time: u64,
    pub(crate) created_by_uid: u32,
    pub(crate) nr_map_ids: u32,
    pub(crate) map_ids: u64,
    pub(crate) name: [u8; 16],
}

/// `struct bpf_link_info`'s prefix with the XDP member of its union (`xdp.ifindex`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BpfLinkInfo {
    pub(crate) link_type: u32,
    pub(crate) id: u32,
    pub(crate) prog_id: u32,
    pub(crate) _pad: u32,
    pub(crate) xdp_ifindex: u32,
    pub(crate) _rest: [u32; 11],
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

/// An instruction: `code`, destination and source registers, offset, immediate.
pub(crate) const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The socket's counters from `XDP_STATISTICS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct XdpStatistics {
    /// Frames dropped for reasons other than an invalid descriptor or a full RX ring: in copy
    /// mode (SKB mode, and native mode on drivers without zero-copy) a frame that found the
    /// fill ring empty.
    pub rx_dropped: u64,
    /// Invalid descriptors found on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors found on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty when it wanted a frame. Not a frame count:
    /// in copy mode each such frame is also counted in `rx_dropped`; zero-copy drivers ask in
    /// batches and count once per failed batch, before any frame arrives.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

impl XdpStatistics {
    /// The counters of `libc`'s `struct xdp_statistics` (a crate-private conversion: no
    /// `From` in the public API).
    pub(crate) fn of(s: libc::xdp_statistics) -> Self {
        XdpStatistics {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn bpf_attr_prefixes_match_uapi() {
        // union bpf_attr, linux/bpf.h: the anonymous struct of each command.
        assert_eq!(offset_of!(MapCreateAttr, max_entries), 12);
        assert_eq!(offset_of!(MapCreateAttr, map_flags), 16);
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(size_of::<MapCreateAttr>(), 44);
        assert_eq!(offset_of!(MapElemAttr, key), 8);
        assert_eq!(offset_of!(MapElemAttr, value), 16);
        assert_eq!(offset_of!(MapElemAttr, flags), 24);
        assert_eq!(size_of::<MapElemAttr>(), 32);
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_level), 24);
        assert_eq!(offset_of!(ProgLoadAttr, log_size), 28);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_flags), 44);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, prog_ifindex), 64);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(size_of::<ProgLoadAttr>(), 72);
        assert_eq!(offset_of!(TestRunAttr, retval), 4);
        assert_eq!(offset_of!(TestRunAttr, data_size_out), 12);
        assert_eq!(offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(offset_of!(TestRunAttr, data_out), 24);
        assert_eq!(offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(size_of::<TestRunAttr>(), 40);
        assert_eq!(offset_of!(LinkCreateAttr, target_ifindex), 4);
        assert_eq!(offset_of!(LinkCreateAttr, attach_type), 8);
        assert_eq!(offset_of!(LinkCreateAttr, flags), 12);
        assert_eq!(offset_of!(IdAttr, next_id), 4);
        assert_eq!(offset_of!(IdAttr, open_flags), 8);
        assert_eq!(offset_of!(InfoAttr, info_len), 4);
        assert_eq!(offset_of!(InfoAttr, info), 8);
        assert_eq!(size_of::<InfoAttr>(), 16);
    }

    #[test]
    fn bpf_info_prefixes_match_uapi() {
        assert_eq!(offset_of!(BpfProgInfo, tag), 8);
        assert_eq!(offset_of!(BpfProgInfo, load_time), 40);
        assert_eq!(offset_of!(BpfProgInfo, nr_map_ids), 52);
        assert_eq!(offset_of!(BpfProgInfo, map_ids), 56);
        assert_eq!(offset_of!(BpfProgInfo, name), 64);
        assert_eq!(size_of::<BpfProgInfo>(), 80);
        assert_eq!(offset_of!(BpfLinkInfo, id), 4);
        assert_eq!(offset_of!(BpfLinkInfo, prog_id), 8);
        assert_eq!(offset_of!(BpfLinkInfo, xdp_ifindex), 16);
        assert_eq!(size_of::<BpfLinkInfo>(), 64);
        assert_eq!(size_of::<Insn>(), 8);
    }

    #[test]
    fn xdp_structs_match_uapi() {
        // struct xdp_statistics: six __u64, as libc's.
        assert_eq!(
            size_of::<XdpStatistics>(),
            size_of::<libc::xdp_statistics>()
        );
        assert_eq!(size_of::<XdpStatistics>(), 48);
        assert_eq!(offset_of!(XdpStatistics, tx_ring_empty_descs), 40);
        assert_eq!(size_of::<libc::xdp_options>(), 4);
        // struct xdp_umem_reg with flags and tx_metadata_len (the kernel takes 24 or more).
        assert_eq!(size_of::<libc::xdp_umem_reg>(), 32);
        assert_eq!(size_of::<libc::sockaddr_xdp>(), 16);
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(offset_of!(XdpDesc, len), 8);
        assert_eq!(offset_of!(XdpDesc, options), 12);
    }
}
