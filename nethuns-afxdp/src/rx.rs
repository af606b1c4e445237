//! The receive half of [`Sock`]: the RX ring's windows, handing frames out as tokens, and
//! recycling released frames to the fill ring. Index loads/stores, refills and wakeup syscalls
//! happen once per window of the RX ring, not per packet.

use nethuns_core::batch::BatchSink;
use nethuns_core::{BufferDesc, Context, Error, Token};

use crate::abi::XdpDesc;
use crate::netdev::{self, LinkState};
use crate::sock::Sock;
use crate::sys;
use crate::Meta;

/// Descriptors taken from the RX ring per refresh of its producer index; the fill ring is
/// refilled (and the RX consumer index published) at least this often.
const RX_BATCH: u32 = 64;
/// Least time between two link checks on the idle receive path (a deleted or downed
/// interface is reported within this, plus the coarse clock's tick, of the first empty poll).
const LINK_CHECK_MS: u64 = 10;
/// Empty polls between two reads of the clock for the link check (a read costs more than
/// the rest of an empty poll).
pub(crate) const CLOCK_EVERY: u32 = 32;

impl Sock {
    /// Moves every released RX frame back to the fill ring, in one batch: those released
    /// through the socket's own handle (a plain stack), then those released through clones
    /// (the lock-free stack).
    #[inline]
    pub(crate) fn refill(&self) {
        if self.umem.local_len() != 0 {
            self.refill_local();
        }
        if self.umem.shared_pending() {
            self.refill_shared();
        } else if self.multi_buffer && !self.rx_spare.borrow().is_empty() {
            // Segments of received multi-buffer frames wait in `rx_spare`.
            self.refill_spare(0);
        }
    }

    /// [`Sock::refill`], out of line (the receive path's window boundary).
    #[inline(never)]
    pub(crate) fn refill_now(&self) {
        self.refill();
    }

    /// The frames of the local stack to the fill ring (frame starts, never jumbo buffers).
    #[inline]
    pub(crate) fn refill_local(&self) {
        let n = self.umem.local_len();
        if self.fill.free_slots(n) >= n {
            self.umem.take_local(|addr| self.fill.push(addr));
            self.fill.submit();
            self.recycled.set(self.recycled.get() + u64::from(n));
        } else {
            let mut spare = self.rx_spare.borrow_mut();
            self.umem.take_local(|addr| spare.push(addr));
            drop(spare);
            self.refill_spare(u64::from(n));
        }
        self.umem.count_released(u64::from(n));
    }

    /// The frames of the lock-free stack (released through clones) to the fill ring.
    #[inline(never)]
    pub(crate) fn refill_shared(&self) {
        let mut spare = self.rx_spare.borrow_mut();
        let mut n = 0u64;
        let taken = self.umem.take_released(|f| {
            if self.multi_buffer && self.umem.is_jumbo(f) {
                self.jumbo_free.borrow_mut().push(f);
            } else {
                spare.push(self.umem.addr_of(f));
                n += 1;
            }
        });
        if taken == 0 {
            return;
        }
        drop(spare);
        // Jumbo buffers too: `released` pairs with `handed_out`, which counts every payload.
        self.umem.count_released(u64::from(taken));
        self.refill_spare(n);
    }

    /// Moves the frames waiting in `rx_spare` to the fill ring (as many as fit), `n` of them
    /// released by payloads.
    #[inline(never)]
    pub(crate) fn refill_spare(&self, n: u64) {
        let mut spare = self.rx_spare.borrow_mut();
        let room = self.fill.free_slots(spare.len() as u32) as usize;
        let k = room.min(spare.len());
        let from = spare.len() - k;
        for addr in spare.drain(from..) {
            self.fill.push(addr);
        }
        self.fill.submit();
        self.recycled.set(self.recycled.get() + n);
    }

    /// Asks the kernel to process the fill ring (zero-copy drivers set the flag when it ran
    /// dry). One syscall, only when the kernel asks.
    #[inline]
    pub(crate) fn wake_rx(&self) {
        if self.fill.needs_wakeup() {
            self.wake_rx_call();
        }
    }

    #[inline(never)]
    pub(crate) fn wake_rx_call(&self) {
        sys::wake_rx(&self.fd);
    }

    /// The receive path found nothing: says why. `NoMemory` when the user holds every receive
    /// frame (the kernel can receive nothing until some are released), `InterfaceDown` when
    /// the interface is gone or down (checked at most every [`LINK_CHECK_MS`], on a coarse
    /// clock, so an idle spin costs no syscall), `NoPacket` otherwise.
    #[inline]
    pub(crate) fn nothing_received(&self) -> Error {
        if self.idle_is_plain() {
            Error::NoPacket
        } else {
            self.why_nothing()
        }
    }

    /// Counts an empty poll (checking the link when due) and says whether it is a plain
    /// `NoPacket`: the interface up, some receive frame not held.
    #[inline(always)]
    pub(crate) fn idle_is_plain(&self) -> bool {
        let idle = self.idle_polls.get().wrapping_add(1);
        self.idle_polls.set(idle);
        if idle % CLOCK_EVERY == 1 {
            self.check_link_due();
        }
        !(self.gone.get() | self.down.get())
            && self.held_frames() < u64::from(self.layout.rx_frames)
    }

    /// Why an empty poll is not a plain `NoPacket`: `InterfaceDown` or `NoMemory`.
    #[cold]
    #[inline(never)]
    pub(crate) fn why_nothing(&self) -> Error {
        if self.gone.get() | self.down.get() {
            return self.down_error();
        }
        if self.held_frames() >= u64::from(self.layout.rx_frames) {
            return Error::NoMemory;
        }
        Error::NoPacket
    }

    /// Checks the link if [`LINK_CHECK_MS`] passed since the last check.
    #[inline(never)]
    pub(crate) fn check_link_due(&self) {
        let now = sys::coarse_ms();
        if now >= self.next_check_ms.get() {
            self.next_check_ms.set(now + LINK_CHECK_MS);
            self.check_link();
        }
    }

    /// `InterfaceDown` with the interface's name.
    #[cold]
    #[inline(never)]
    pub(crate) fn down_error(&self) -> Error {
        Error::InterfaceDown(self.ifname.clone())
    }

    /// At the end of a window (every entry read): gives RX slots back, recycles released
    /// frames, and looks at the ring again. (At every window, not only when the ring is
    /// empty: under sustained traffic the kernel must see the slots and frames come back, or
    /// it drops on a full ring.) `false`: nothing to read ([`Sock::nothing_received`] says
    /// why).
    #[inline(always)]
    pub(crate) fn next_window(&self) -> bool {
        self.rx.release();
        if self.umem.local_len() != 0 || self.multi_buffer || self.umem.shared_pending() {
            self.refill_now();
        }
        // Called at a window's end: every entry of it was read.
        if self.rx.refresh(RX_BATCH) != 0 {
            return true;
        }
        self.wake_rx();
        false
    }

    /// Pushes the next `n` entries of the current window into `sink` (which has room);
    /// single-buffer sockets only (a multi-buffer frame spans several entries).
    #[inline(always)]
    pub(crate) fn take_into<const RX_META: bool>(&self, sink: &mut BatchSink<'_, Meta>, n: u32) {
        for _ in 0..n {
            let (t, m) = self.take_desc_with(self.rx.pop(), RX_META);
            // Cannot fail: n is at most the room left.
            let _ = sink.push(t, m);
        }
    }

    /// Hands out the frame of descriptor `d`, just popped (a single-buffer frame).
    #[inline(always)]
    pub(crate) fn take_desc(&self, d: XdpDesc) -> (Token, Meta) {
        self.take_desc_with(d, self.rx_meta)
    }

    /// [`Sock::take_desc`], with the XDP RX metadata in front of the frame read or not
    /// (`rx_meta`: whether the steering program writes it; a constant in the batch loops).
    #[inline(always)]
    pub(crate) fn take_desc_with(&self, d: XdpDesc, rx_meta: bool) -> (Token, Meta) {
        let XdpDesc { addr, len, options } = d;
        self.umem.mark_out(self.umem.frame_of(addr));
        self.handed_out.set(self.handed_out.get() + 1);
        let (rx_timestamp, xdp_timestamp, rx_hash) = if rx_meta {
            self.rx_metadata_fields(addr)
        } else {
            (None, None, None)
        };
        // AF_XDP delivers the frame as on the wire (the redirect runs before VLAN offload
        // strips anything in SKB mode, and native drivers hand XDP the raw frame).
        let meta = Meta {
            len,
            queue: self.queue,
            options,
            // The frame at `addr` was just taken from the RX ring: the kernel wrote `len`
            // bytes there and no longer touches them.
            vlan: self.umem.outer_vlan(addr, len),
            rx_timestamp,
            xdp_timestamp,
            rx_hash,
        };
        // SAFETY: the kernel handed frame `addr` to us on the RX ring; it leaves every ring
        // and list until this token's payload releases it, and `len` fits in the frame.
        let token = unsafe { Token::new(BufferDesc::new(addr as usize), len, self.umem.pool_id()) };
        (token, meta)
    }

    /// The driver's RX timestamp, the program's software stamp (since the epoch) and the RX
    /// hash the steering program wrote in front of the frame at `addr`.
    #[inline(never)]
    pub(crate) fn rx_metadata_fields(&self, addr: u64) -> (Option<u64>, Option<u64>, Option<u32>) {
        let rx = self.rx_metadata_of(addr);
        (
            rx.driver_ts,
            rx.tai_ts
                .map(|t| (t as i64).wrapping_add(self.tai_to_epoch_ns) as u64),
            rx.hash,
        )
    }

    /// Receive frames held by payloads and tokens now.
    #[inline]
    pub(crate) fn held_frames(&self) -> u64 {
        // `released` counts a frame when the socket takes it back from the released stack, so
        // this never undercounts: frames released since the last refill are still counted as
        // held (the callers look right after a refill).
        self.handed_out.get().saturating_sub(self.umem.released())
    }

    /// Asks the kernel whether the socket is still bound (its interface not deleted) and the
    /// interface up, and empties the link-event socket: three syscalls, on the idle path at
    /// most every [`LINK_CHECK_MS`].
    #[cold]
    pub(crate) fn check_link(&self) {
        if self.gone.get() {
            return;
        }
        netdev::drain(&self.link_events);
        // On NETDEV_UNREGISTER the kernel unbinds every socket of the device and sets
        // ENETDOWN as the socket error; the interface's name may be reused afterwards, so
        // the socket error, not the name, says that this socket's device is gone.
        if netdev::take_socket_error(&self.fd) == Some(libc::ENETDOWN) {
            self.gone.set(true);
            return;
        }
        match netdev::link_state(&self.ctl, &self.ifname) {
            // No carrier is not "down" for receiving: the kernel updates IFF_RUNNING
            // asynchronously (linkwatch), so a link just brought up may lack it for a while,
            // and frames already queued can still arrive.
            LinkState::Up | LinkState::NoCarrier => self.down.set(false),
            LinkState::Down => self.down.set(true),
            LinkState::Gone => self.gone.set(true),
        }
    }

    /// The metadata of a received frame whose (first) descriptor had `addr` and `options`:
    /// `len` bytes, `bytes` its data.
    pub(crate) fn meta_for(&self, addr: u64, len: u32, options: u32, data: (u64, u32)) -> Meta {
        let (rx_timestamp, xdp_timestamp, rx_hash) = self.rx_metadata_fields(addr);
        Meta {
            len,
            queue: self.queue,
            options,
            vlan: self.umem.outer_vlan(data.0, data.1),
            rx_timestamp,
            xdp_timestamp,
            rx_hash,
        }
    }

    /// The RX timestamp and hash the steering program wrote in front of the frame at `addr`
    /// (see `rxmeta`), all `None` when it writes none.
    #[inline]
    pub(crate) fn rx_metadata_of(&self, addr: u64) -> crate::rxmeta::RxMeta {
        let in_frame = addr & (u64::from(self.layout.frame_size) - 1);
        if !self.rx_meta || in_frame < crate::rxmeta::META_LEN as u64 {
            return crate::rxmeta::RxMeta::default();
        }
        let at = (addr - crate::rxmeta::META_LEN as u64) as usize;
        // The META_LEN bytes before `addr` lie in the same frame (checked above), a frame
        // just taken from the RX ring and owned by this call; the kernel wrote them before
        // publishing the descriptor (or left an older frame's bytes, which the magic check in
        // `take` rejects, clearing it in a valid area).
        let mut area: [u8; crate::rxmeta::META_LEN] = self.umem.read(at as u64);
        let before = area;
        let meta = crate::rxmeta::take(&mut area);
        if area != before {
            self.umem.write_bytes(at as u64, area);
        }
        meta
    }
}
