//! Attaching to a registered port's memory region: find the interface descriptor, pick the
//! rings the registration bound, check every offset the kernel gave against the region's size,
//! and take over the extra-buffer list. Shared by the real device and the simulator.

use std::any::Any;
use std::ptr::{addr_of, NonNull};

use nethuns_core::{Error, Result};

use crate::context::NetmapContext;
use crate::extra::{BufMem, ExtraPool};
use crate::portspec::Rings;
use crate::ring::Ring;
use crate::sys::{self, netmap_if, netmap_ring};

/// A registered port's memory, as the registration reported it.
pub(crate) struct Region {
    /// Start of the mapping.
    pub base: *mut u8,
    /// Its size (`nr_memsize`).
    pub len: usize,
    /// Offset of the `netmap_if` (`nr_offset`).
    pub nifp_offset: usize,
    /// Extra buffers granted (`nr_extra_bufs`).
    pub extra_granted: u32,
}

/// The rings a socket uses and the context owning the region.
pub(crate) struct Attached {
    pub ctx: NetmapContext,
    pub rx: Vec<Ring>,
    pub tx: Vec<Ring>,
}

fn bad(what: &str, port: &str, reason: String) -> Error {
    crate::netmap_error(
        format!("{what} of {port}"),
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    )
}

/// Attaches to `region`, whose registration bound `rings`, handing `owner` (which keeps the
/// region mapped) to the context.
///
/// # Safety
/// `region.base .. region.base + region.len` is mapped read-write and stays so while `owner`
/// lives; the region was laid out by netmap (or the simulator) for this registration.
pub(crate) unsafe fn attach(
    region: &Region,
    rings: Rings,
    port: &str,
    owner: Box<dyn Any + Send + Sync>,
) -> Result<Attached> {
    let end = region.base as usize + region.len;
    let within = |p: usize, size: usize| {
        p >= region.base as usize && p.checked_add(size).is_some_and(|e| e <= end)
    };
    if region.nifp_offset % 8 != 0
        || !within(
            region.base as usize + region.nifp_offset,
            std::mem::size_of::<netmap_if>(),
        )
    {
        return Err(bad(
            "netmap_if",
            port,
            format!(
                "offset {} outside the {}-byte region",
                region.nifp_offset, region.len
            ),
        ));
    }
    let nifp = sys::netmap_if_at(region.base, region.nifp_offset);
    let rd = |p: *const u32| p.read_volatile() as usize;
    let (ntx, nrx) = (
        rd(addr_of!((*nifp).ni_tx_rings)),
        rd(addr_of!((*nifp).ni_rx_rings)),
    );
    let (nhtx, nhrx) = (
        rd(addr_of!((*nifp).ni_host_tx_rings)),
        rd(addr_of!((*nifp).ni_host_rx_rings)),
    );
    let total = ntx + nhtx + nrx + nhrx;
    let ofs_end = region.base as usize + region.nifp_offset + std::mem::size_of::<netmap_if>();
    if total == 0 || total > 4 * 4096 || !within(ofs_end, total * std::mem::size_of::<isize>()) {
        return Err(bad(
            "netmap_if",
            port,
            format!("{total} rings listed do not fit the region"),
        ));
    }
    let pick = |all: usize, host: usize| -> std::result::Result<Vec<u32>, String> {
        let sel: Vec<usize> = match rings {
            Rings::AllNic => (0..all).collect(),
            Rings::OneNic(r) => vec![r as usize],
            Rings::Host => (all..all + host).collect(),
            Rings::OneHost(r) => vec![all + r as usize],
            Rings::NicAndHost => (0..all + host).collect(),
        };
        match sel.iter().find(|&&i| i >= all + host) {
            Some(i) => Err(format!(
                "ring {i} requested but the port has {all} hardware and {host} host rings"
            )),
            None if sel.is_empty() => Err("no ring selected".into()),
            None => Ok(sel.into_iter().map(|i| i as u32).collect()),
        }
    };
    let tx_sel = pick(ntx, nhtx).map_err(|r| bad("TX rings", port, r))?;
    let rx_sel = pick(nrx, nhrx).map_err(|r| bad("RX rings", port, r))?;

    // Every ring: header and slots inside the region; all rings share one buffer area.
    let mut buf_area: Option<(usize, u32)> = None;
    let mut check = |i: usize, dir: &str| -> Result<NonNull<netmap_ring>> {
        let ofs = sys::ring_ofs(nifp, i);
        let p = (nifp as usize).wrapping_add_signed(ofs);
        if p % std::mem::align_of::<netmap_ring>() != 0 || !within(p, sys::RING_HEADER) {
            return Err(bad(
                dir,
                port,
                format!("ring offset {ofs} outside the region"),
            ));
        }
        let ring = p as *mut netmap_ring;
        let n = addr_of!((*ring).num_slots).read_volatile();
        let size = addr_of!((*ring).nr_buf_size).read_volatile();
        let buf_ofs = addr_of!((*ring).buf_ofs).read_volatile();
        let head = addr_of!((*ring).head).read_volatile();
        if n < 2 || !within(p, sys::RING_HEADER + n as usize * 16) || head >= n {
            return Err(bad(
                dir,
                port,
                format!("ring with {n} slots (head {head}) does not fit the region"),
            ));
        }
        let base = (p as isize).wrapping_add(buf_ofs as isize) as usize;
        if size < 64 || size % 4 != 0 || base % 4 != 0 || !within(base, size as usize) {
            return Err(bad(
                dir,
                port,
                format!("buffer area (offset {buf_ofs}, {size}-byte buffers) outside the region"),
            ));
        }
        match buf_area {
            None => buf_area = Some((base, size)),
            Some(a) if a == (base, size) => {}
            Some(_) => {
                return Err(bad(dir, port, "rings disagree on the buffer area".into()));
            }
        }
        // SAFETY: non-null (inside the region).
        Ok(NonNull::new_unchecked(ring))
    };
    let tx_ptrs = tx_sel
        .iter()
        .map(|&i| check(i as usize, "TX ring").map(|p| (p, i)))
        .collect::<Result<Vec<_>>>()?;
    let rx_ptrs = rx_sel
        .iter()
        .map(|&i| check(ntx + nhtx + i as usize, "RX ring").map(|p| (p, i)))
        .collect::<Result<Vec<_>>>()?;
    let (base, size) = buf_area.expect("at least one ring was checked");
    let nbufs = ((end - base) / size as usize).min(u32::MAX as usize) as u32;
    let mem = BufMem::new(base as *mut u8, size, nbufs);

    let head = addr_of!((*nifp).ni_bufs_head).read_volatile();
    let pool = ExtraPool::from_list(mem, head, region.extra_granted)
        .map_err(|r| bad("extra buffers", port, r))?;
    // The list now belongs to the pool; the context writes it back at teardown.
    std::ptr::addr_of_mut!((*nifp).ni_bufs_head).write_volatile(0);
    let ctx = NetmapContext::new(pool, nifp, owner);
    // Ask for `ts` on every RX sync: it is the timestamp `recv` reports.
    for (p, _) in &rx_ptrs {
        let flags = std::ptr::addr_of_mut!((*p.as_ptr()).flags);
        flags.write_volatile(flags.read_volatile() | sys::NR_TIMESTAMP);
    }
    let ring = |&(p, i): &(NonNull<netmap_ring>, u32)| Ring::new(p, i);
    Ok(Attached {
        ctx,
        tx: tx_ptrs.iter().map(ring).collect(),
        rx: rx_ptrs.iter().map(ring).collect(),
    })
}
