//! The netmap ABI, declared by hand (declarations only, no logic), re-exported as [`crate::sys`].
//!
//! Source: netmap's `sys/net/netmap.h` and `sys/net/netmap_user.h` at API version 14
//! (`NETMAP_API 14`, the API of netmap's `master` branch and of FreeBSD ≥ 13's in-tree copy).
//! These declarations replace the headers so the crate builds on machines without netmap
//! installed; the layout tests below pin every field's offset to the values the headers give
//! on 64-bit targets (LP64: Linux x86_64/aarch64, FreeBSD amd64/arm64).
//!
//! Why not the `netmap-rs` crate: its FFI (`sys` feature) is bindgen over installed headers plus
//! a static `libnetmap`, so it does not build without netmap, and its safe layer opens ports
//! through `nm_open` with no access to extra buffers (`nr_extra_bufs` / `ni_bufs_head`).
//!
//! The macros of `netmap_user.h` (`NETMAP_IF`, `NETMAP_TXRING`, `NETMAP_RXRING`, `NETMAP_BUF`,
//! `nm_ring_next`, `nm_ring_empty`, `nm_ring_space`) are the functions at the end.

#![allow(non_camel_case_types)]

use std::os::raw::c_char;

use nethuns_sys_linux::Pod;

/// `NETMAP_API`: the API version this crate speaks (`nmreq_header.nr_version`).
pub const NETMAP_API: u16 = 14;

/// `NETMAP_REQ_IFNAMSIZ`: room for the port name in `nmreq_header.nr_name`, NUL included.
pub const NETMAP_REQ_IFNAMSIZ: usize = 64;
/// `IFNAMSIZ` as used by `netmap_if.ni_name`.
pub const IFNAMSIZ: usize = 16;
/// `NM_CACHE_ALIGN`: alignment of `netmap_ring.sem`.
pub const NM_CACHE_ALIGN: usize = 128;

/// `NETMAP_REQ_REGISTER`: `nmreq_header.nr_reqtype` of a port registration.
pub const NETMAP_REQ_REGISTER: u16 = 1;
/// `NETMAP_REQ_PORT_INFO_GET`.
pub const NETMAP_REQ_PORT_INFO_GET: u16 = 2;

/// `NR_REG_ALL_NIC`: all hardware ring pairs.
pub const NR_REG_ALL_NIC: u32 = 1;
/// `NR_REG_SW`: the host (software) rings only.
pub const NR_REG_SW: u32 = 2;
/// `NR_REG_NIC_SW`: hardware and host rings.
pub const NR_REG_NIC_SW: u32 = 3;
/// `NR_REG_ONE_NIC`: the one hardware ring pair named by `nr_ringid`.
pub const NR_REG_ONE_NIC: u32 = 4;
/// `NR_REG_ONE_SW`: the one host ring pair named by `nr_ringid`.
pub const NR_REG_ONE_SW: u32 = 8;

/// `NR_EXCLUSIVE`: request exclusive access to the selected rings.
pub const NR_EXCLUSIVE: u64 = 0x800;
/// `NR_NO_TX_POLL`: `poll()` does not run a TX sync.
pub const NR_NO_TX_POLL: u64 = 0x20000;

/// `NS_BUF_CHANGED`: the slot's `buf_idx` was changed by the user; the kernel reloads it.
pub const NS_BUF_CHANGED: u16 = 0x0001;
/// `NS_REPORT`: ask the hardware to report completion of this TX slot.
pub const NS_REPORT: u16 = 0x0002;
/// `NS_FORWARD`: pass the packet to the other side (host ↔ NIC) on the next sync.
pub const NS_FORWARD: u16 = 0x0004;
/// `NS_NO_LEARN`: VALE: disable bridge learning for this packet.
pub const NS_NO_LEARN: u16 = 0x0008;
/// `NS_INDIRECT`: the data is at `ptr`, not in the slot's buffer.
pub const NS_INDIRECT: u16 = 0x0010;
/// `NS_MOREFRAG`: the packet continues in the next slot.
pub const NS_MOREFRAG: u16 = 0x0020;

/// `NR_TIMESTAMP`: ring flag, update `ts` on every sync.
pub const NR_TIMESTAMP: u32 = 0x0002;
/// `NR_FORWARD`: ring flag, honour `NS_FORWARD`.
pub const NR_FORWARD: u32 = 0x0004;

/// The first buffer index that can name a packet buffer: netmap reserves buffers 0 and 1, and
/// 0 terminates the extra-buffer list.
pub const FIRST_BUF_IDX: u32 = 2;

/// `struct netmap_slot`: one ring slot, 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct netmap_slot {
    /// Index of the buffer holding the packet.
    pub buf_idx: u32,
    /// Packet length in this slot.
    pub len: u16,
    /// `NS_*` flags.
    pub flags: u16,
    /// Pointer for indirect buffers / offsets; unused here.
    pub ptr: u64,
}

/// The first 8 bytes of a [`netmap_slot`] (buffer, length, flags): what the ring code reads
/// and writes per packet, in one access of the region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotHead {
    /// `buf_idx`.
    pub buf_idx: u32,
    /// `len`.
    pub len: u16,
    /// `flags`.
    pub flags: u16,
}

// SAFETY: three integer fields (4 + 2 + 2 bytes) with no padding (the layout test pins size 8
// and the offsets, equal to `netmap_slot`'s): every bit pattern is a valid value.
unsafe impl Pod for SlotHead {}

/// The opaque, cache-aligned room for a lock in `netmap_ring` (`uint8_t sem[128]
/// __attribute__((aligned(NM_CACHE_ALIGN)))`).
#[repr(C, align(128))]
#[derive(Clone, Copy)]
pub struct nm_sem(pub [u8; 128]);

/// `struct netmap_ring`: the header of one ring, followed in memory by `num_slots` slots.
///
/// Fields marked `(k)` are written by the kernel during a sync, `(u)` by the user.
#[repr(C)]
pub struct netmap_ring {
    /// Offset of the buffer region from this ring header.
    pub buf_ofs: i64,
    /// Number of slots in the ring.
    pub num_slots: u32,
    /// Size of every buffer.
    pub nr_buf_size: u32,
    /// Ring id.
    pub ringid: u16,
    /// 0: TX, 1: RX.
    pub dir: u16,
    /// (u) first slot owned by the user.
    pub head: u32,
    /// (u) wakeup point.
    pub cur: u32,
    /// (k) first slot owned by the kernel.
    pub tail: u32,
    /// `NR_*` flags.
    pub flags: u32,
    /// (k) time of the last sync.
    pub ts: libc::timeval,
    /// Mask of the offset part of `slot.ptr` (`NETMAP_REQ_OPT_OFFSETS`; 0 otherwise).
    pub offset_mask: u64,
    /// Alignment required for packet starts with offsets.
    pub buf_align: u64,
    /// Opaque room for a lock.
    pub sem: nm_sem,
    /// The slots (variable length).
    pub slot: [netmap_slot; 0],
}

/// `struct netmap_if`: the interface descriptor at `nr_offset` in the shared region, followed
/// by `ring_ofs[]`: the offset of each ring from this struct, in the order NIC TX rings, host TX
/// rings, NIC RX rings, host RX rings.
#[repr(C)]
pub struct netmap_if {
    /// Interface name.
    pub ni_name: [c_char; IFNAMSIZ],
    /// API version (unused by the kernel).
    pub ni_version: u32,
    /// `NI_*` flags.
    pub ni_flags: u32,
    /// Number of hardware TX rings.
    pub ni_tx_rings: u32,
    /// Number of hardware RX rings.
    pub ni_rx_rings: u32,
    /// First buffer of the extra-buffer list (each buffer's first 4 bytes hold the next index,
    /// 0 ends the list). Read at registration, written back before close.
    pub ni_bufs_head: u32,
    /// Number of host TX rings.
    pub ni_host_tx_rings: u32,
    /// Number of host RX rings.
    pub ni_host_rx_rings: u32,
    /// Spare.
    pub ni_spare1: [u32; 3],
    /// Ring offsets (variable length).
    pub ring_ofs: [isize; 0],
}

/// `struct nmreq_header`: the argument of `NIOCCTRL`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct nmreq_header {
    /// `NETMAP_API`.
    pub nr_version: u16,
    /// `NETMAP_REQ_*`.
    pub nr_reqtype: u16,
    /// Must be zero.
    pub nr_reserved: u32,
    /// Port name (`eth0`, `vale0:p`), NUL-terminated.
    pub nr_name: [c_char; NETMAP_REQ_IFNAMSIZ],
    /// Pointer to a chain of options (0: none).
    pub nr_options: u64,
    /// Pointer to the request body (`nmreq_register`).
    pub nr_body: u64,
}

/// `struct nmreq_register`: the body of `NETMAP_REQ_REGISTER`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct nmreq_register {
    /// (out) offset of the `netmap_if` in the shared region.
    pub nr_offset: u64,
    /// (out) size of the shared region.
    pub nr_memsize: u64,
    /// (in/out) slots per TX ring.
    pub nr_tx_slots: u32,
    /// (in/out) slots per RX ring.
    pub nr_rx_slots: u32,
    /// (in/out) TX rings.
    pub nr_tx_rings: u16,
    /// (in/out) RX rings.
    pub nr_rx_rings: u16,
    /// (in/out) host TX rings.
    pub nr_host_tx_rings: u16,
    /// (in/out) host RX rings.
    pub nr_host_rx_rings: u16,
    /// (in/out) memory allocator id.
    pub nr_mem_id: u16,
    /// (in) the ring for `NR_REG_ONE_*`.
    pub nr_ringid: u16,
    /// (in) `NR_REG_*`.
    pub nr_mode: u32,
    /// (in/out) requested / granted extra buffers.
    pub nr_extra_bufs: u32,
    /// (in) `NR_*` flags.
    pub nr_flags: u64,
}

// ioctl numbers. Linux: _IOWR = (3 << 30) | (size << 16) | (type << 8) | nr, _IO = type<<8|nr.
// FreeBSD: _IOWR = IOC_INOUT (0xC0000000) | (size << 16) | ..., _IO = IOC_VOID (0x20000000) | ...
const NIOC_TYPE: u64 = b'i' as u64;

/// `NIOCCTRL`: `_IOWR('i', 151, struct nmreq_header)`.
pub const NIOCCTRL: u64 =
    0xC000_0000 | ((std::mem::size_of::<nmreq_header>() as u64) << 16) | (NIOC_TYPE << 8) | 151;

#[cfg(not(target_os = "freebsd"))]
const IOC_VOID: u64 = 0;
#[cfg(target_os = "freebsd")]
const IOC_VOID: u64 = 0x2000_0000;

/// `NIOCTXSYNC`: `_IO('i', 148)`, sync the TX rings bound to the file descriptor.
pub const NIOCTXSYNC: u64 = IOC_VOID | (NIOC_TYPE << 8) | 148;
/// `NIOCRXSYNC`: `_IO('i', 149)`, sync the RX rings bound to the file descriptor.
pub const NIOCRXSYNC: u64 = IOC_VOID | (NIOC_TYPE << 8) | 149;

/// Size of a ring header before its slots (`sizeof(struct netmap_ring)`).
pub const RING_HEADER: usize = std::mem::size_of::<netmap_ring>();

/// `NETMAP_IF(base, ofs)`: the interface descriptor at `ofs` in a region.
///
/// The crate itself reaches the region through [`SharedMap`](nethuns_sys_linux::SharedMap)
/// offsets; these raw-pointer forms of `netmap_user.h`'s macros are for callers that hold a
/// pointer to a mapped region.
///
/// # Safety
/// `base + ofs` must be inside the mapped region.
#[inline]
pub unsafe fn netmap_if_at(base: *mut u8, ofs: usize) -> *mut netmap_if {
    // SAFETY: the caller promises `base + ofs` is inside the region `base` starts.
    unsafe { base.add(ofs) }.cast()
}

/// `ring_ofs[i]` of an interface.
///
/// # Safety
/// `nifp` points to a valid `netmap_if` and `i` is less than the number of rings it lists.
#[inline]
pub unsafe fn ring_ofs(nifp: *const netmap_if, i: usize) -> isize {
    // SAFETY: `nifp` points to a valid `netmap_if` (caller), whose `ring_ofs` follows it.
    let arr = unsafe { std::ptr::addr_of!((*nifp).ring_ofs) }.cast::<isize>();
    // SAFETY: `i` is below the number of rings listed, so entry `i` is part of the array.
    let entry = unsafe { arr.add(i) };
    // SAFETY: as above: an aligned, mapped `isize` of the array.
    unsafe { entry.read_volatile() }
}

/// `NETMAP_TXRING(nifp, i)`: TX ring `i` (host TX rings follow the NIC TX rings).
///
/// # Safety
/// As [`ring_ofs`], with `i < ni_tx_rings + ni_host_tx_rings`.
#[inline]
pub unsafe fn netmap_txring(nifp: *mut netmap_if, i: usize) -> *mut netmap_ring {
    // SAFETY: the caller's contract is `ring_ofs`'s.
    let ofs = unsafe { ring_ofs(nifp, i) };
    // SAFETY: netmap lays every listed ring out inside the region that holds `nifp`.
    unsafe { nifp.cast::<u8>().offset(ofs) }.cast()
}

/// `NETMAP_RXRING(nifp, i)`: RX ring `i` (host RX rings follow the NIC RX rings).
///
/// # Safety
/// As [`ring_ofs`], with `i < ni_rx_rings + ni_host_rx_rings`.
#[inline]
pub unsafe fn netmap_rxring(nifp: *mut netmap_if, i: usize) -> *mut netmap_ring {
    // SAFETY: `nifp` points to a valid `netmap_if` (caller).
    let ntx = unsafe { (*nifp).ni_tx_rings } as usize;
    // SAFETY: as above.
    let nhtx = unsafe { (*nifp).ni_host_tx_rings } as usize;
    // SAFETY: the RX rings follow the TX rings in `ring_ofs`; `i` is an RX ring (caller).
    let ofs = unsafe { ring_ofs(nifp, i + ntx + nhtx) };
    // SAFETY: netmap lays every listed ring out inside the region that holds `nifp`.
    unsafe { nifp.cast::<u8>().offset(ofs) }.cast()
}

/// `&ring->slot[i]`.
///
/// # Safety
/// `ring` points to a valid ring and `i < num_slots`.
#[inline]
pub unsafe fn ring_slot(ring: *mut netmap_ring, i: u32) -> *mut netmap_slot {
    // SAFETY: `ring` points to a valid ring (caller); the slots follow its header.
    let first = unsafe { std::ptr::addr_of_mut!((*ring).slot) }.cast::<netmap_slot>();
    // SAFETY: `i < num_slots`: slot `i` is part of the ring.
    unsafe { first.add(i as usize) }
}

/// `NETMAP_BUF(ring, idx)`: the buffer `idx` of the ring's memory region.
///
/// # Safety
/// `ring` points to a valid ring and `idx` names a buffer of its region.
#[inline]
pub unsafe fn netmap_buf(ring: *mut netmap_ring, idx: u32) -> *mut u8 {
    // SAFETY: `ring` points to a valid ring (caller).
    let buf_ofs = unsafe { (*ring).buf_ofs } as isize;
    // SAFETY: as above.
    let size = unsafe { (*ring).nr_buf_size } as usize;
    // SAFETY: netmap places the buffer area at `buf_ofs` from the ring, inside the region.
    let base = unsafe { ring.cast::<u8>().offset(buf_ofs) };
    // SAFETY: `idx` names a buffer of the region (caller), so it lies inside the area.
    unsafe { base.add(idx as usize * size) }
}

/// `nm_ring_next(ring, i)` with the slot count given: the slot after `i`.
#[inline]
pub const fn nm_ring_next(num_slots: u32, i: u32) -> u32 {
    if i + 1 == num_slots {
        0
    } else {
        i + 1
    }
}

/// `nm_ring_empty(ring)`: no slot is owned by the user (`head == tail`).
#[inline]
pub const fn nm_ring_empty(head: u32, tail: u32) -> bool {
    head == tail
}

/// `nm_ring_space(ring)`: slots the user owns from `cur` to `tail`.
#[inline]
pub const fn nm_ring_space(num_slots: u32, cur: u32, tail: u32) -> u32 {
    if tail >= cur {
        tail - cur
    } else {
        tail + num_slots - cur
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod layout {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn netmap_slot_layout() {
        assert_eq!(size_of::<netmap_slot>(), 16);
        assert_eq!(offset_of!(netmap_slot, buf_idx), 0);
        assert_eq!(offset_of!(netmap_slot, len), 4);
        assert_eq!(offset_of!(netmap_slot, flags), 6);
        assert_eq!(offset_of!(netmap_slot, ptr), 8);
    }

    #[test]
    fn slot_head_is_the_start_of_a_slot() {
        assert_eq!(size_of::<SlotHead>(), 8);
        assert_eq!(
            offset_of!(SlotHead, buf_idx),
            offset_of!(netmap_slot, buf_idx)
        );
        assert_eq!(offset_of!(SlotHead, len), offset_of!(netmap_slot, len));
        assert_eq!(offset_of!(SlotHead, flags), offset_of!(netmap_slot, flags));
    }

    #[test]
    fn netmap_ring_layout() {
        assert_eq!(offset_of!(netmap_ring, buf_ofs), 0);
        assert_eq!(offset_of!(netmap_ring, num_slots), 8);
        assert_eq!(offset_of!(netmap_ring, nr_buf_size), 12);
        assert_eq!(offset_of!(netmap_ring, ringid), 16);
        assert_eq!(offset_of!(netmap_ring, dir), 18);
        assert_eq!(offset_of!(netmap_ring, head), 20);
        assert_eq!(offset_of!(netmap_ring, cur), 24);
        assert_eq!(offset_of!(netmap_ring, tail), 28);
        assert_eq!(offset_of!(netmap_ring, flags), 32);
        assert_eq!(offset_of!(netmap_ring, ts), 40);
        assert_eq!(size_of::<libc::timeval>(), 16);
        assert_eq!(offset_of!(netmap_ring, offset_mask), 56);
        assert_eq!(offset_of!(netmap_ring, buf_align), 64);
        assert_eq!(offset_of!(netmap_ring, sem), 128);
        assert_eq!(size_of::<nm_sem>(), 128);
        assert_eq!(offset_of!(netmap_ring, slot), 256);
        assert_eq!(size_of::<netmap_ring>(), 256);
        assert_eq!(align_of::<netmap_ring>(), NM_CACHE_ALIGN);
    }

    #[test]
    fn netmap_if_layout() {
        assert_eq!(offset_of!(netmap_if, ni_name), 0);
        assert_eq!(offset_of!(netmap_if, ni_version), 16);
        assert_eq!(offset_of!(netmap_if, ni_flags), 20);
        assert_eq!(offset_of!(netmap_if, ni_tx_rings), 24);
        assert_eq!(offset_of!(netmap_if, ni_rx_rings), 28);
        assert_eq!(offset_of!(netmap_if, ni_bufs_head), 32);
        assert_eq!(offset_of!(netmap_if, ni_host_tx_rings), 36);
        assert_eq!(offset_of!(netmap_if, ni_host_rx_rings), 40);
        assert_eq!(offset_of!(netmap_if, ni_spare1), 44);
        assert_eq!(offset_of!(netmap_if, ring_ofs), 56);
        assert_eq!(size_of::<netmap_if>(), 56);
    }

    #[test]
    fn nmreq_header_layout() {
        assert_eq!(offset_of!(nmreq_header, nr_version), 0);
        assert_eq!(offset_of!(nmreq_header, nr_reqtype), 2);
        assert_eq!(offset_of!(nmreq_header, nr_reserved), 4);
        assert_eq!(offset_of!(nmreq_header, nr_name), 8);
        assert_eq!(offset_of!(nmreq_header, nr_options), 72);
        assert_eq!(offset_of!(nmreq_header, nr_body), 80);
        assert_eq!(size_of::<nmreq_header>(), 88);
    }

    #[test]
    fn nmreq_register_layout() {
        assert_eq!(offset_of!(nmreq_register, nr_offset), 0);
        assert_eq!(offset_of!(nmreq_register, nr_memsize), 8);
        assert_eq!(offset_of!(nmreq_register, nr_tx_slots), 16);
        assert_eq!(offset_of!(nmreq_register, nr_rx_slots), 20);
        assert_eq!(offset_of!(nmreq_register, nr_tx_rings), 24);
        assert_eq!(offset_of!(nmreq_register, nr_rx_rings), 26);
        assert_eq!(offset_of!(nmreq_register, nr_host_tx_rings), 28);
        assert_eq!(offset_of!(nmreq_register, nr_host_rx_rings), 30);
        assert_eq!(offset_of!(nmreq_register, nr_mem_id), 32);
        assert_eq!(offset_of!(nmreq_register, nr_ringid), 34);
        assert_eq!(offset_of!(nmreq_register, nr_mode), 36);
        assert_eq!(offset_of!(nmreq_register, nr_extra_bufs), 40);
        assert_eq!(offset_of!(nmreq_register, nr_flags), 48);
        assert_eq!(size_of::<nmreq_register>(), 56);
    }

    #[test]
    fn ioctl_numbers() {
        // _IOWR('i', 151, struct nmreq_header) with sizeof == 88 (0x58).
        assert_eq!(NIOCCTRL, 0xC058_6997);
        #[cfg(target_os = "linux")]
        {
            assert_eq!(NIOCTXSYNC, 0x6994);
            assert_eq!(NIOCRXSYNC, 0x6995);
        }
        #[cfg(target_os = "freebsd")]
        {
            assert_eq!(NIOCTXSYNC, 0x2000_6994);
            assert_eq!(NIOCRXSYNC, 0x2000_6995);
        }
    }

    #[test]
    fn ring_helpers() {
        assert_eq!(nm_ring_next(4, 2), 3);
        assert_eq!(nm_ring_next(4, 3), 0);
        assert!(nm_ring_empty(5, 5));
        assert!(!nm_ring_empty(5, 6));
        assert_eq!(nm_ring_space(8, 6, 2), 4);
        assert_eq!(nm_ring_space(8, 2, 6), 4);
        assert_eq!(nm_ring_space(8, 3, 3), 0);
    }
}
