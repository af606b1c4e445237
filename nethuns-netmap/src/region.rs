//! Attaching to a registered port's memory region: find the interface descriptor, pick the
//! rings the registration bound, check every offset the kernel gave against the region's size,
//! and take over the extra-buffer list. Shared by the real device and the simulator. The
//! region is a [`SharedMap`]: every position here is a byte offset into it.

use std::any::Any;
use std::mem::{offset_of, size_of};
use std::sync::Arc;

use nethuns_core::{Error, Result};
use nethuns_sys_linux::SharedMap;

use crate::abi::{netmap_if, netmap_ring, netmap_slot, NR_TIMESTAMP, RING_HEADER};
use crate::context::NetmapContext;
use crate::extra::{BufMem, ExtraPool};
use crate::portspec::Rings;
use crate::ring::Ring;

/// A registered port's memory, as the registration reported it.
pub(crate) struct Region {
    /// The mapping (`nr_memsize` bytes).
    pub map: Arc<SharedMap>,
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

/// Offset of `ni_bufs_head` in a `netmap_if`.
pub(crate) const NI_BUFS_HEAD: usize = offset_of!(netmap_if, ni_bufs_head);

fn bad(what: &str, port: &str, reason: String) -> Error {
    crate::netmap_error(
        format!("{what} of {port}"),
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason),
    )
}

/// Attaches to `region`, whose registration bound `rings`, handing `owner` (what else must
/// live as long as the region: the real port's descriptor) to the context.
pub(crate) fn attach(
    region: Region,
    rings: Rings,
    port: &str,
    owner: Box<dyn Any + Send + Sync>,
) -> Result<Attached> {
    let map = &region.map;
    let len = map.len();
    let within = |p: usize, size: usize| p.checked_add(size).is_some_and(|e| e <= len);
    let nifp = region.nifp_offset;
    if nifp % 8 != 0 || !within(nifp, size_of::<netmap_if>()) {
        return Err(bad(
            "netmap_if",
            port,
            format!("offset {nifp} outside the {len}-byte region"),
        ));
    }
    let rd = |field: usize| map.read::<u32>(nifp + field) as usize;
    let (ntx, nrx) = (
        rd(offset_of!(netmap_if, ni_tx_rings)),
        rd(offset_of!(netmap_if, ni_rx_rings)),
    );
    let (nhtx, nhrx) = (
        rd(offset_of!(netmap_if, ni_host_tx_rings)),
        rd(offset_of!(netmap_if, ni_host_rx_rings)),
    );
    let total = ntx + nhtx + nrx + nhrx;
    let ofs_start = nifp + size_of::<netmap_if>();
    if total == 0 || total > 4 * 4096 || !within(ofs_start, total * size_of::<isize>()) {
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
    let mut check = |i: usize, dir: &str| -> Result<usize> {
        let ofs = map.read::<isize>(ofs_start + i * size_of::<isize>());
        let at = nifp
            .checked_add_signed(ofs)
            .filter(|&p| p % std::mem::align_of::<netmap_ring>() == 0 && within(p, RING_HEADER));
        let Some(p) = at else {
            return Err(bad(
                dir,
                port,
                format!("ring offset {ofs} outside the region"),
            ));
        };
        let field = |f: usize| map.read::<u32>(p + f);
        let n = field(offset_of!(netmap_ring, num_slots));
        let size = field(offset_of!(netmap_ring, nr_buf_size));
        let buf_ofs = map.read::<i64>(p + offset_of!(netmap_ring, buf_ofs));
        let head = field(offset_of!(netmap_ring, head));
        if n < 2 || !within(p, RING_HEADER + n as usize * size_of::<netmap_slot>()) || head >= n {
            return Err(bad(
                dir,
                port,
                format!("ring with {n} slots (head {head}) does not fit the region"),
            ));
        }
        let base = isize::try_from(buf_ofs)
            .ok()
            .and_then(|o| p.checked_add_signed(o));
        let base = match base {
            Some(b) if size >= 64 && size % 4 == 0 && b % 4 == 0 && within(b, size as usize) => b,
            _ => {
                return Err(bad(
                    dir,
                    port,
                    format!(
                        "buffer area (offset {buf_ofs}, {size}-byte buffers) outside the region"
                    ),
                ))
            }
        };
        match buf_area {
            None => buf_area = Some((base, size)),
            Some(a) if a == (base, size) => {}
            Some(_) => {
                return Err(bad(dir, port, "rings disagree on the buffer area".into()));
            }
        }
        Ok(p)
    };
    let tx_at = tx_sel
        .iter()
        .map(|&i| check(i as usize, "TX ring").map(|p| (p, i)))
        .collect::<Result<Vec<_>>>()?;
    let rx_at = rx_sel
        .iter()
        .map(|&i| check(ntx + nhtx + i as usize, "RX ring").map(|p| (p, i)))
        .collect::<Result<Vec<_>>>()?;
    let (base, size) = buf_area.expect("at least one ring was checked");
    let nbufs = ((len - base) / size as usize).min(u32::MAX as usize) as u32;
    let mem = BufMem::new(map.clone(), base, size, nbufs);

    let head = map.read::<u32>(nifp + NI_BUFS_HEAD);
    let pool = ExtraPool::from_list(mem, head, region.extra_granted)
        .map_err(|r| bad("extra buffers", port, r))?;
    // The list now belongs to the pool; the context writes it back at teardown.
    map.write::<u32>(nifp + NI_BUFS_HEAD, 0);
    let ctx = NetmapContext::new(pool, nifp, owner);
    // Ask for `ts` on every RX sync: it is the timestamp `recv` reports.
    for &(p, _) in &rx_at {
        let flags = p + offset_of!(netmap_ring, flags);
        map.write::<u32>(flags, map.read::<u32>(flags) | NR_TIMESTAMP);
    }
    let ring = |&(p, i): &(usize, u32)| Ring::new(map.clone(), p, i);
    Ok(Attached {
        ctx,
        tx: tx_at.iter().map(ring).collect(),
        rx: rx_at.iter().map(ring).collect(),
    })
}
