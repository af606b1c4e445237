//! The entry point of the `netmap_ring` fuzz target (feature `fuzzing`): the ring and
//! extra-buffer logic over the simulated port, with what the kernel writes (the region's
//! layout, the extra-buffer list, `tail`, slot buffers, lengths and flags, timestamps) taken
//! from the fuzzer. Not part of the API.

use std::cell::RefCell;
use std::io;

use crate::abi::{self, NS_MOREFRAG};
use crate::context::JUMBO_BASE;
use crate::engine::Port;
use crate::portspec::Rings;
use crate::sim::{self, at, SimConfig, SimKernel, SimPort};

/// Reads the input a byte at a time; zeros once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// One session over a simulated port shaped by the input's first bytes. `data[0]` bit 0
/// picks the mode: corrupt the region's layout and extra-buffer list, then attach (which must
/// refuse with an error or give a working context); or a valid region and a sequence of
/// receives, sends, releases and syncs, each sync followed by what the input makes the kernel
/// write into the rings. Every buffer must be accounted for at the end.
pub fn ring_session(data: &[u8]) {
    let mut input = Input(data);
    let mode = input.u8();
    let cfg = SimConfig {
        nic_rings: 1 + u32::from(input.u8() % 2),
        host_rings: u32::from(input.u8() % 2),
        slots: 2 + u32::from(input.u8() % 15),
        buf_size: 64 * (1 + u32::from(input.u8() % 8)),
        extra: u32::from(input.u8() % 17),
    };
    let rings = match input.u8() % 5 {
        0 => Rings::AllNic,
        1 => Rings::OneNic(u16::from(input.u8() % 3)),
        2 => Rings::Host,
        3 => Rings::OneHost(u16::from(input.u8() % 2)),
        _ => Rings::NicAndHost,
    };
    let mut kernel = SimKernel::build(cfg);
    if input.u8() % 4 == 0 {
        // netmap may grant fewer extra buffers than asked, or say so wrongly.
        kernel.granted = u32::from(input.u8()) % (cfg.extra + 2);
    }
    if mode & 1 == 0 {
        layout(kernel, rings, &mut input);
    } else {
        traffic(kernel, rings, &mut input);
    }
}

/// Corrupts the layout and the extra-buffer list, then attaches and detaches.
fn layout(kernel: SimKernel, rings: Rings, input: &mut Input) {
    let map = kernel.map().clone();
    let meta_len = kernel.metadata_len();
    let nbufs = kernel.nbufs();
    for _ in 0..64 {
        if input.done() {
            break;
        }
        match input.u8() % 4 {
            0 => {
                // Any 32-bit word of the netmap_if, the ring headers or the slots.
                let off = (usize::from(input.u16()) * 4) % meta_len;
                map.write::<u32>(off, input.u32());
            }
            1 if kernel.cfg.extra > 0 => {
                // A link of the extra-buffer list: small values make loops and strays.
                let e = u32::from(input.u8()) % kernel.cfg.extra;
                let v = u32::from(input.u8()) % (nbufs + 2);
                map.write::<u32>(kernel.extra_link(e), v);
            }
            2 => {
                let v = u32::from(input.u8()) % (nbufs + 2);
                map.write::<u32>(at::NI_BUFS_HEAD, v);
            }
            _ => {
                let off = (usize::from(input.u16()) * 4) % meta_len;
                map.write::<u32>(off, u32::from(input.u8()));
            }
        }
    }
    if let Ok((engine, k)) = sim::attach_kernel(kernel, rings) {
        // The pool took the list as the attached rings describe the buffers (which may not
        // be the simulator's layout any more): walk it that way.
        let ctx = engine.context().clone();
        let total = ctx.extra_buffers();
        assert_eq!(ctx.free_extra_buffers(), total);
        assert_eq!(ctx.pool().free_list().len() as u32, total);
        let head = ctx.pool().head_idx();
        drop(engine);
        drop(ctx);
        // The list goes back to the kernel whole.
        assert_eq!(
            map.read::<u32>(at::NI_BUFS_HEAD),
            head,
            "list not given back"
        );
        drop(k);
    }
}

/// What the kernel writes into the rings after a sync.
#[derive(Clone, Copy, Debug)]
enum Write {
    Tail {
        rx: bool,
        ring: u8,
        value: u32,
    },
    SlotBuf {
        rx: bool,
        ring: u8,
        slot: u8,
        value: u32,
    },
    SlotLen {
        ring: u8,
        slot: u8,
        value: u16,
    },
    SlotMoreFrag {
        ring: u8,
        slot: u8,
    },
    Ts {
        ring: u8,
        sec: u32,
        usec: u32,
    },
}

/// The simulated port, plus the fuzzer's writes after each sync. A slot's buffer index is
/// the kernel's to keep: the bad index written is put back before the next sync (netmap keeps
/// its own copy of each slot's buffer), so the simulator's checks of the user's side stay
/// true.
struct FuzzPort {
    inner: SimPort,
    queued: RefCell<Vec<Write>>,
    /// Slot buffer words to put back: offset in the region and value.
    restore: RefCell<Vec<(usize, u32)>>,
}

impl FuzzPort {
    fn before_sync(&self) {
        let k = self.inner.0.borrow();
        for (off, v) in self.restore.borrow_mut().drain(..).rev() {
            k.map().write::<u32>(off, v);
        }
    }

    fn after_sync(&self) {
        let mut k = self.inner.0.borrow_mut();
        let map = k.map().clone();
        let per_dir = (k.cfg.nic_rings + k.cfg.host_rings) as usize;
        let n = k.cfg.slots;
        for w in self.queued.borrow_mut().drain(..) {
            if let Write::Tail { rx, ring, value } = w {
                k.kernel_set_tail(rx, usize::from(ring) % per_dir, value);
                continue;
            }
            let ring_of = |rx: bool, r: u8| k.ring_at(rx, usize::from(r) % per_dir);
            // The user's part of a ring after the sync, `[head, tail)`, where the kernel
            // hands over slots; `None` if it is empty.
            let user_slot = |ring: usize, s: u8| {
                let head = map.read::<u32>(ring + at::HEAD);
                let tail = map.read::<u32>(ring + at::TAIL);
                let space = abi::nm_ring_space(n, head, tail.min(n - 1));
                (space > 0).then(|| (head + u32::from(s) % space) % n)
            };
            // The user does not run during a sync.
            match w {
                Write::Tail { .. } => {}
                Write::SlotBuf {
                    rx,
                    ring,
                    slot,
                    value,
                } => {
                    let r = ring_of(rx, ring);
                    if let Some(i) = user_slot(r, slot) {
                        let off = at::slot(r, i) + at::SLOT_BUF;
                        self.restore.borrow_mut().push((off, map.read::<u32>(off)));
                        map.write::<u32>(off, value);
                    }
                }
                Write::SlotLen { ring, slot, value } => {
                    let r = ring_of(true, ring);
                    if let Some(i) = user_slot(r, slot) {
                        map.write::<u16>(at::slot(r, i) + at::SLOT_LEN, value);
                    }
                }
                Write::SlotMoreFrag { ring, slot } => {
                    let r = ring_of(true, ring);
                    if let Some(i) = user_slot(r, slot) {
                        let off = at::slot(r, i) + at::SLOT_FLAGS;
                        map.write::<u16>(off, map.read::<u16>(off) ^ NS_MOREFRAG);
                    }
                }
                Write::Ts { ring, sec, usec } => {
                    let r = ring_of(true, ring);
                    map.write::<libc::time_t>(r + at::TS_SEC, sec as _);
                    map.write::<libc::suseconds_t>(r + at::TS_USEC, usec as _);
                }
            }
        }
    }
}

impl Port for FuzzPort {
    fn rx_sync(&self) -> io::Result<()> {
        self.before_sync();
        let r = self.inner.rx_sync();
        self.after_sync();
        r
    }

    fn tx_sync(&self) -> io::Result<()> {
        self.before_sync();
        let r = self.inner.tx_sync();
        self.after_sync();
        r
    }

    fn wait_rx(&self, timeout_ms: i32) -> io::Result<bool> {
        self.before_sync();
        let r = self.inner.wait_rx(timeout_ms);
        self.after_sync();
        r
    }
}

/// A bad buffer index: 0 and 1 are netmap's reserved buffers; the rest is past the region.
fn bad_index(nbufs: u32, v: u8) -> u32 {
    match v % 4 {
        0 => u32::from(v & 1),
        1 => nbufs + u32::from(v >> 2),
        2 => u32::MAX,
        _ => nbufs,
    }
}

/// Receives, sends and releases in the order the input says, with kernel writes after syncs.
fn traffic(kernel: SimKernel, rings: Rings, input: &mut Input) {
    let nbufs = kernel.nbufs();
    let cfg = kernel.cfg;
    let wrap = |inner| FuzzPort {
        inner,
        queued: RefCell::new(Vec::new()),
        restore: RefCell::new(Vec::new()),
    };
    let Ok((engine, k)) = sim::attach_kernel_with(kernel, rings, wrap) else {
        return;
    };
    let per_dir = (cfg.nic_rings + cfg.host_rings) as usize;
    let ctx = engine.context().clone();
    let jumbo_total = ctx.free_jumbo_buffers();
    let mut held = Vec::new();
    let mut frame = vec![0u8; cfg.buf_size as usize];
    for _ in 0..512 {
        if input.done() {
            break;
        }
        match input.u8() % 9 {
            0 => {
                let ring = usize::from(input.u8()) % per_dir;
                let len = usize::from(input.u16()) % (cfg.buf_size as usize + 1);
                let b = input.u8();
                k.borrow_mut().inject(ring, vec![b; len]);
            }
            1 => {
                let ring = usize::from(input.u8()) % per_dir;
                let frags = (0..2 + input.u8() % 3)
                    .map(|i| vec![i; usize::from(input.u8()) % (cfg.buf_size as usize + 1)])
                    .collect();
                k.borrow_mut().inject_fragments(ring, frags);
            }
            2 | 3 => {
                if let Ok((token, meta)) = engine.recv_token() {
                    // A chain of slots arrives whole in a jumbo buffer, longer than a slot.
                    assert!(
                        meta.len <= cfg.buf_size || token.buffer_desc().get() >= JUMBO_BASE,
                        "a packet over its buffer"
                    );
                    let payload = token.consume(&ctx);
                    assert_eq!(payload.len(), meta.len as usize);
                    let sum: u32 = payload.iter().map(|&b| u32::from(b)).sum();
                    std::hint::black_box(sum);
                    if input.u8() & 1 == 1 && held.len() < 64 {
                        held.push(payload.into_token());
                    }
                }
            }
            4 => {
                if !held.is_empty() {
                    let i = usize::from(input.u8()) % held.len();
                    drop(held.swap_remove(i).consume(&ctx));
                }
            }
            5 => {
                let len = usize::from(input.u16()) % (cfg.buf_size as usize + 8);
                frame.resize(len, 0x5a);
                let _ = engine.send(&frame);
            }
            6 => {
                let _ = engine.flush();
            }
            7 => {
                let port = engine.port();
                let (ring, slot) = (input.u8(), input.u8());
                let w = match input.u8() % 7 {
                    0 => Write::Tail {
                        rx: true,
                        ring,
                        value: input.u32(),
                    },
                    1 => Write::Tail {
                        rx: false,
                        ring,
                        value: input.u32(),
                    },
                    2 => Write::SlotBuf {
                        rx: true,
                        ring,
                        slot,
                        value: bad_index(nbufs, input.u8()),
                    },
                    3 => Write::SlotBuf {
                        rx: false,
                        ring,
                        slot,
                        value: bad_index(nbufs, input.u8()),
                    },
                    4 => Write::SlotLen {
                        ring,
                        slot,
                        value: input.u16(),
                    },
                    5 => Write::SlotMoreFrag { ring, slot },
                    _ => Write::Ts {
                        ring,
                        sec: input.u32(),
                        usec: input.u32(),
                    },
                };
                port.queued.borrow_mut().push(w);
            }
            _ => {
                let mut kk = k.borrow_mut();
                match input.u8() % 3 {
                    0 => kk.sync_errno = Some(libc::ENXIO),
                    1 => kk.sync_errno = None,
                    _ => kk.tx_complete = !kk.tx_complete,
                }
            }
        }
    }
    // Account for every buffer: in a ring slot, held, or in the free list.
    engine.port().before_sync();
    let held_bufs: Vec<u32> = held
        .iter()
        .map(|t| t.buffer_desc().get())
        .filter(|&d| d < JUMBO_BASE)
        .map(|d| d as u32)
        .collect();
    let mut all = k.borrow().ring_buffers();
    all.extend(ctx.pool().free_list());
    all.extend_from_slice(&held_bufs);
    all.sort_unstable();
    let want: Vec<u32> = (abi::FIRST_BUF_IDX..nbufs).collect();
    assert_eq!(all, want, "buffers lost or duplicated");
    for t in held {
        drop(t.consume(&ctx));
    }
    let total = ctx.extra_buffers();
    assert_eq!(ctx.free_extra_buffers(), total, "extra buffers not back");
    assert_eq!(
        ctx.free_jumbo_buffers(),
        jumbo_total,
        "jumbo buffers not back"
    );
    drop(engine);
    drop(ctx);
    let back = sim::walk_bufs_head(&k.borrow());
    assert_eq!(back.len() as u32, total, "extra buffers lost at teardown");
}
