//! The data path of [`Sock`]: receive from the RX ring, recycle frames to the fill ring,
//! transmit through the TX ring, reap the completion ring. All ring traffic is batched: index
//! loads/stores, refills, reaps and wakeup syscalls happen once per batch, not per packet.

use std::io;
use std::os::fd::AsRawFd;

use nethuns_core::batch::BatchSink;
use nethuns_core::frame::{self, ETH_HLEN};
use nethuns_core::{BufferDesc, Capabilities, Context, Error, Result, Socket, Stats, Token};

use crate::flags::AfXdpFlags;
use crate::netdev::{self, LinkState};
use crate::ring::XdpDesc;
use crate::socket::Sock;
use crate::umem::Umem;
use crate::Meta;

/// Descriptors taken from the RX ring per refresh of its producer index; the fill ring is
/// refilled (and the RX consumer index published) at least this often.
const RX_BATCH: u32 = 64;
/// Sent packets queued before `send` publishes them and kicks the kernel by itself.
const TX_BATCH: u32 = 64;
/// Upper bound of wakeup calls one flush makes (copy mode moves up to 32 frames per call).
const MAX_KICKS: u32 = 4096;
/// Wakeup calls in a row after which a flush gives up when the kernel takes no frame.
const MAX_STALLS: u32 = 8;
/// Least time between two link checks on the idle receive path (a deleted or downed
/// interface is reported within this, plus the coarse clock's tick, of the first empty poll).
const LINK_CHECK_MS: u64 = 10;
/// Empty polls between two reads of the clock for the link check (a read costs more than
/// the rest of an empty poll).
pub(crate) const CLOCK_EVERY: u32 = 32;

/// Milliseconds of `CLOCK_MONOTONIC_COARSE`: a vDSO read (no syscall), a few ns, with the
/// kernel tick's resolution (1–10 ms), enough to pace the idle path's link checks.
#[inline]
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; CLOCK_MONOTONIC_COARSE always exists on
    // Linux (2.6.32+), so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// A TX frame taken off the free list for `send_with`, put back on drop (a refused frame, a
/// panicking closure); forgotten once the frame is on the TX ring.
struct TxFrame<'a> {
    free: &'a crate::stack::FrameStack,
    addr: u64,
}

impl Drop for TxFrame<'_> {
    fn drop(&mut self) {
        self.free.push(self.addr);
    }
}

/// What a flush's wakeup calls ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The kernel took everything, or is taking it (no error).
    Ok,
    /// The device is down or gone (errno, or the kernel took nothing for several calls).
    Down(Option<i32>),
    /// Another errno: frames stay on the ring for the next flush.
    Failed(i32),
}

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
    fn refill_now(&self) {
        self.refill();
    }

    /// The frames of the local stack to the fill ring (frame starts, never jumbo buffers).
    #[inline]
    fn refill_local(&self) {
        let n = self.umem.local_len();
        if self.fill.prod_free(n) >= n {
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
    fn refill_shared(&self) {
        let mut f = self.umem.take_released();
        if Umem::is_nil(f) {
            return;
        }
        let mut spare = self.rx_spare.borrow_mut();
        let (mut n, mut taken) = (0u64, 0u64);
        loop {
            // Read `next` before the frame can be reused (it is ours now either way).
            let next = self.umem.chain_next(f);
            taken += 1;
            if self.multi_buffer && self.umem.is_jumbo(f) {
                self.jumbo_free.borrow_mut().push(f);
            } else {
                spare.push(self.umem.addr_of(f));
                n += 1;
            }
            match next {
                Some(x) => f = x,
                None => break,
            }
        }
        drop(spare);
        // Jumbo buffers too: `released` pairs with `handed_out`, which counts every payload.
        self.umem.count_released(taken);
        self.refill_spare(n);
    }

    /// Moves the frames waiting in `rx_spare` to the fill ring (as many as fit), `n` of them
    /// released by payloads.
    #[inline(never)]
    fn refill_spare(&self, n: u64) {
        let mut spare = self.rx_spare.borrow_mut();
        let room = self.fill.prod_free(spare.len() as u32) as usize;
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
    fn wake_rx(&self) {
        if self.fill.needs_wakeup() {
            self.wake_rx_call();
        }
    }

    #[inline(never)]
    fn wake_rx_call(&self) {
        // SAFETY: recvfrom with a null buffer of length 0 on our socket is the documented
        // AF_XDP wakeup; no memory is written.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Puts TX frame `addr` (`len` bytes) on the TX ring (the caller checked a slot is
    /// free) and counts it queued.
    #[inline]
    fn queue_frame(&self, addr: u64, len: u32) {
        self.tx.push(XdpDesc {
            addr,
            len,
            options: 0,
        });
        self.queued_one();
    }

    /// Counts a frame queued on the TX ring (however many descriptors it took); submits a
    /// full batch.
    #[inline]
    pub(crate) fn queued_one(&self) {
        let pending = self.tx_pending.get() + 1;
        self.tx_pending.set(pending);
        if pending >= TX_BATCH {
            self.submit_and_kick();
        }
    }

    /// Takes completed TX frames back onto the free list, in one batch.
    pub(crate) fn reap(&self) {
        let n = self.comp.cons_avail(u32::MAX);
        if n == 0 {
            return;
        }
        let mask = !(self.layout.frame_size as u64 - 1);
        let rx_end = u64::from(self.layout.rx_frames) * u64::from(self.layout.frame_size);
        for _ in 0..n {
            let addr = self.comp.pop() & mask;
            if addr < rx_end {
                // A received frame sent by `send_payload`: released now, back to the fill
                // ring with the next refill.
                self.umem.recycle(addr);
            } else {
                let pushed = self.tx_free.push(addr);
                // There is room for every TX frame.
                debug_assert!(pushed, "TX free list full");
            }
        }
        self.comp.release();
    }

    /// Publishes pending TX descriptors and kicks the kernel while it needs it, until the TX
    /// ring is drained or the kernel cannot progress (bounded).
    pub(crate) fn submit_and_kick(&self) -> Kick {
        let pending = self.tx_pending.get();
        if pending > 0 {
            self.tx.submit();
            self.tx_pending.set(0);
            self.sent.set(self.sent.get() + pending as u64);
        }
        let mut outcome = Kick::Ok;
        // Copy mode transmits only inside sendto() (up to 32 frames a call), whatever the flag
        // says: call until the ring is drained. Zero-copy drivers transmit on their own: one
        // wakeup, and only when the ring asks for it.
        let max_kicks = if self.zero_copy { 1 } else { MAX_KICKS };
        let mut kicks = 0;
        let mut stalls = 0;
        self.link_down.set(false);
        while !self.tx.prod_drained() && kicks < max_kicks && stalls < MAX_STALLS {
            if self.zero_copy && !self.tx.needs_wakeup() {
                break;
            }
            kicks += 1;
            let before = self.tx.kernel_consumer();
            // SAFETY: sendto with a null buffer of length 0 on our socket is the documented
            // AF_XDP TX wakeup; no memory is read.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let err = (rc < 0).then(|| io::Error::last_os_error().raw_os_error());
            if self.tx.kernel_consumer() == before {
                stalls += 1;
            } else {
                stalls = 0;
            }
            match err {
                None => {}
                // Budget used up (copy mode moves 32 frames a call) or the device queue is
                // busy: call again (while the kernel makes progress).
                Some(Some(libc::EAGAIN | libc::EBUSY | libc::EINTR)) => {}
                // No room in the device queue: completions must come first.
                Some(Some(libc::ENOBUFS)) => {
                    self.reap();
                    std::thread::yield_now();
                }
                // The device is down or gone: frames stay on the ring until it is back.
                // (ENXIO: the kernel unbound the socket, its interface was deleted.)
                Some(Some(e @ (libc::ENETDOWN | libc::ENXIO | libc::ENODEV))) => {
                    self.link_down.set(true);
                    if e == libc::ENXIO {
                        self.gone.set(true);
                    }
                    outcome = Kick::Down(Some(e));
                    break;
                }
                // Anything else: stop; frames stay on the ring for the next flush.
                Some(e) => {
                    outcome = Kick::Failed(e.unwrap_or(libc::EIO));
                    break;
                }
            }
        }
        if stalls >= MAX_STALLS {
            // The kernel took nothing for several calls: the carrier is off or the device
            // queue stopped.
            self.link_down.set(true);
            if outcome == Kick::Ok {
                outcome = Kick::Down(None);
            }
        }
        self.reap();
        outcome
    }

    /// The receive path found nothing: says why. `NoMemory` when the user holds every receive
    /// frame (the kernel can receive nothing until some are released), `InterfaceDown` when
    /// the interface is gone or down (checked at most every [`LINK_CHECK_MS`], on a coarse
    /// clock, so an idle spin costs no syscall), `NoPacket` otherwise.
    #[inline]
    fn nothing_received(&self) -> Error {
        if self.idle_is_plain() {
            Error::NoPacket
        } else {
            self.why_nothing()
        }
    }

    /// Counts an empty poll (checking the link when due) and says whether it is a plain
    /// `NoPacket`: the interface up, some receive frame not held.
    #[inline(always)]
    fn idle_is_plain(&self) -> bool {
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
    fn why_nothing(&self) -> Error {
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
    fn check_link_due(&self) {
        let now = coarse_ms();
        if now >= self.next_check_ms.get() {
            self.next_check_ms.set(now + LINK_CHECK_MS);
            self.check_link();
        }
    }

    /// `InterfaceDown` with the interface's name.
    #[cold]
    #[inline(never)]
    fn down_error(&self) -> Error {
        Error::InterfaceDown(self.ifname.clone())
    }

    /// At the end of a window (every entry read): gives RX slots back, recycles released
    /// frames, and looks at the ring again. (At every window, not only when the ring is
    /// empty: under sustained traffic the kernel must see the slots and frames come back, or
    /// it drops on a full ring.) `false`: nothing to read ([`Sock::nothing_received`] says
    /// why).
    #[inline(always)]
    fn next_window(&self) -> bool {
        self.rx.release();
        if self.umem.local_len() != 0 || self.multi_buffer || self.umem.shared_pending() {
            self.refill_now();
        }
        // Called at a window's end: every entry of it was read.
        if self.rx.cons_refresh(RX_BATCH) != 0 {
            return true;
        }
        self.wake_rx();
        false
    }

    /// Pushes the next `n` entries of the current window into `sink` (which has room);
    /// single-buffer sockets only (a multi-buffer frame spans several entries).
    #[inline(always)]
    fn take_into<const RX_META: bool>(&self, sink: &mut BatchSink<'_, Meta>, n: u32) {
        for _ in 0..n {
            let (t, m) = self.take_desc_with(self.rx.pop(), RX_META);
            // Cannot fail: n is at most the room left.
            let _ = sink.push(t, m);
        }
    }

    /// Hands out the frame of descriptor `d`, just popped (a single-buffer frame).
    #[inline(always)]
    fn take_desc(&self, d: XdpDesc) -> (Token, Meta) {
        self.take_desc_with(d, self.rx_meta)
    }

    /// [`Sock::take_desc`], with the XDP RX metadata in front of the frame read or not
    /// (`rx_meta`: whether the steering program writes it; a constant in the batch loops).
    #[inline(always)]
    fn take_desc_with(&self, d: XdpDesc, rx_meta: bool) -> (Token, Meta) {
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
            // SAFETY: the frame at `addr` was just taken from the RX ring: the kernel wrote
            // `len` bytes there and no longer touches it; nobody else holds it yet, and it
            // lies in the UMEM (the kernel validates RX descriptors against the registered
            // area).
            vlan: unsafe { self.umem.outer_vlan(addr, len) },
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
    fn rx_metadata_fields(&self, addr: u64) -> (Option<u64>, Option<u64>, Option<u32>) {
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

    /// `send_with` off its fast path: the size rule (before and after `fill`), a gone
    /// interface, a multi-buffer frame, a full TX side.
    #[inline(never)]
    fn send_with_slow<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        if let Err(e) = nethuns_core::check_frame_len(
            len,
            ETH_HLEN,
            self.max_tx_len + nethuns_core::frame::VLAN_HLEN,
        ) {
            return self.refuse(e);
        }
        if len > self.layout.frame_size as usize {
            let mut frame = vec![0u8; len];
            fill(&mut frame);
            return self.send(&frame);
        }
        if self.gone.get() {
            return self.refuse(Error::InterfaceDown(self.ifname.clone()));
        }
        let addr = self.reserve_tx_frame()?;
        self.fill_and_queue(addr, len, fill, true)
    }

    /// Lets `fill` write the `len` bytes (≤ a UMEM frame) of TX frame `addr`, just taken off
    /// the free list with a free TX slot, and queues it; `check_after`: apply the size rule
    /// to the written frame (its EtherType decides the 802.1Q allowance), not needed for an
    /// untagged-size length. The frame goes back to the free list if it is refused or `fill`
    /// panics.
    #[inline(always)]
    fn fill_and_queue<F: FnOnce(&mut [u8])>(
        &self,
        addr: u64,
        len: usize,
        fill: F,
        check_after: bool,
    ) -> Result<()> {
        let frame = TxFrame {
            free: &self.tx_free,
            addr,
        };
        // SAFETY: a TX frame taken off the free list is the socket's alone (no ring holds
        // it); `len` ≤ the frame size (the callers check); the slice lives only during `fill`.
        let buf = unsafe { &mut *self.umem.unsafe_buffer(BufferDesc::new(addr as usize), len) };
        fill(buf);
        if check_after {
            if let Err(e) = nethuns_core::check_frame_len(len, ETH_HLEN, self.max_len_for(buf)) {
                drop(frame);
                return self.refuse(e);
            }
        }
        // `fill` may have used the socket: look at the TX ring again.
        if self.tx.prod_free(1) == 0 {
            drop(frame);
            self.submit_and_kick();
            return Err(Error::NoMemory);
        }
        std::mem::forget(frame);
        self.queue_frame(addr, len as u32);
        Ok(())
    }

    /// `send` off its fast path: the size rule, a gone interface, a multi-buffer frame, a
    /// full TX side (kicks the kernel and reaps once before giving up with `NoMemory`).
    #[inline(never)]
    fn send_slow(&self, packet: &[u8]) -> Result<()> {
        if let Err(e) =
            nethuns_core::check_frame_len(packet.len(), ETH_HLEN, self.max_len_for(packet))
        {
            return self.refuse(e);
        }
        if self.gone.get() {
            return self.refuse(Error::InterfaceDown(self.ifname.clone()));
        }
        if packet.len() > self.layout.frame_size as usize {
            return self.send_multi(packet);
        }
        let addr = self.reserve_tx_frame()?;
        self.umem.write(addr, packet);
        self.queue_frame(addr, packet.len() as u32);
        Ok(())
    }

    /// A free TX frame for a send, after one kick and reap if none is free and a TX slot
    /// for it: `NoMemory` (back-pressure), `InterfaceDown` when the link is down.
    #[inline]
    fn reserve_tx_frame(&self) -> Result<u64> {
        if let Some(a) = self.tx_free.pop() {
            if self.tx.prod_free(1) != 0 {
                return Ok(a);
            }
            self.tx_free.push(a);
        }
        self.submit_and_kick();
        match self.tx_free.pop() {
            Some(a) if self.tx.prod_free(1) != 0 => Ok(a),
            Some(a) => {
                self.tx_free.push(a);
                Err(Error::NoMemory)
            }
            None if self.link_down.get() && !self.link_is_up() => {
                Err(self.refused(Error::InterfaceDown(self.ifname.clone())))
            }
            None => Err(Error::NoMemory),
        }
    }

    /// Queues `frame`, a received frame of this socket's UMEM, by its address: `Ok(true)`
    /// when it is on the TX ring (the caller gives up its payload without releasing it).
    #[inline]
    fn send_own(&self, addr: u64, frame: &[u8]) -> Result<bool> {
        // An untagged-size frame passes the size rule whatever its EtherType.
        let len = frame.len();
        if len < ETH_HLEN || len > self.max_tx_len {
            if let Err(e) = nethuns_core::check_frame_len(len, ETH_HLEN, self.max_len_for(frame)) {
                return Err(self.refused(e));
            }
        }
        if self.gone.get() {
            return Err(self.refused(Error::InterfaceDown(self.ifname.clone())));
        }
        if self.tx.prod_free(1) == 0 {
            self.submit_and_kick();
            if self.tx.prod_free(1) == 0 {
                return Err(Error::NoMemory);
            }
        }
        self.queue_frame(addr, frame.len() as u32);
        Ok(true)
    }

    /// Counts a refused send and returns its error.
    #[cold]
    fn refuse(&self, e: Error) -> Result<()> {
        Err(self.refused(e))
    }

    /// Counts a refused send; returns `e`.
    #[cold]
    fn refused(&self, e: Error) -> Error {
        self.refused.set(self.refused.get() + 1);
        e
    }

    /// The metadata of a received frame whose (first) descriptor had `addr` and `options`:
    /// `len` bytes, `bytes` its data.
    pub(crate) fn meta_for(&self, addr: u64, len: u32, options: u32, bytes: &[u8]) -> Meta {
        let (rx_timestamp, xdp_timestamp, rx_hash) = self.rx_metadata_fields(addr);
        Meta {
            len,
            queue: self.queue,
            options,
            vlan: frame::outer_vlan(bytes),
            rx_timestamp,
            xdp_timestamp,
            rx_hash,
        }
    }

    /// The RX timestamp and hash the steering program wrote in front of the frame at `addr`
    /// (see `rxmeta`), all `None` when it writes none.
    #[inline]
    fn rx_metadata_of(&self, addr: u64) -> crate::rxmeta::RxMeta {
        let in_frame = addr & (u64::from(self.layout.frame_size) - 1);
        if !self.rx_meta || in_frame < crate::rxmeta::META_LEN as u64 {
            return crate::rxmeta::RxMeta::default();
        }
        let at = (addr - crate::rxmeta::META_LEN as u64) as usize;
        // SAFETY: the META_LEN bytes before `addr` lie in the same frame (checked above), a
        // frame just taken from the RX ring and owned by this call; the kernel wrote them
        // before publishing the descriptor (or left an older frame's bytes, which the magic
        // check in `take` rejects).
        let area = unsafe {
            &mut *(self
                .umem
                .unsafe_buffer(BufferDesc::new(at), crate::rxmeta::META_LEN)
                as *mut [u8; crate::rxmeta::META_LEN])
        };
        crate::rxmeta::take(area)
    }

    /// The largest frame `send` takes for this one: MTU + 14, or MTU + 18 when its outer
    /// EtherType is 802.1Q (0x8100; the kernel's rule, [`frame::send_limit`]), at most a frame.
    #[inline]
    fn max_len_for(&self, packet: &[u8]) -> usize {
        let limit = frame::send_limit(packet, self.max_tx_len);
        if self.multi_buffer {
            limit
        } else {
            limit.min(self.layout.frame_size as usize)
        }
    }
}

impl Socket for Sock {
    type Context = Umem;
    type Metadata = Meta;
    type Flags = AfXdpFlags;

    /// [`Socket::recv_token`] paired with the socket's context, inlined into the caller.
    #[inline(always)]
    fn recv(&self) -> Result<(nethuns_core::Payload<'_, Umem>, Meta)> {
        if self.rx.cons_window_done() && !self.next_window() {
            // The plain case returns a constant: inlined, the caller's match on it needs no
            // drop of an `Error`.
            if self.idle_is_plain() {
                return Err(Error::NoPacket);
            }
            return Err(self.why_nothing());
        }
        let d = self.rx.pop();
        let (token, meta) = if d.options & libc::XDP_PKT_CONTD != 0 {
            self.recv_multi(d)?
        } else {
            self.take_desc(d)
        };
        // SAFETY: the token was made by this socket from its own context.
        Ok((
            unsafe { nethuns_core::Payload::from_token_unchecked(token, &self.umem) },
            meta,
        ))
    }

    #[inline(always)]
    fn recv_token(&self) -> Result<(Token, Meta)> {
        if self.rx.cons_window_done() && !self.next_window() {
            return Err(self.nothing_received());
        }
        let d = self.rx.pop();
        if d.options & libc::XDP_PKT_CONTD != 0 {
            return self.recv_multi(d);
        }
        Ok(self.take_desc(d))
    }

    #[inline]
    fn fill_batch(&self, sink: &mut BatchSink<'_, Meta>) -> Result<()> {
        if self.multi_buffer {
            // A multi-buffer frame takes several descriptors: packet by packet, as `recv`.
            while sink.remaining() > 0 {
                match self.recv_token() {
                    Ok((t, m)) => {
                        // Cannot fail: there is room.
                        let _ = sink.push(t, m);
                    }
                    Err(Error::NoPacket) => return Ok(()),
                    Err(e) if sink.is_empty() => return Err(e),
                    Err(_) => return Ok(()),
                }
            }
            return Ok(());
        }
        if self.rx.cons_window_done() && !self.next_window() {
            let e = self.nothing_received();
            if matches!(e, Error::NoPacket) {
                // Owns nothing: forgotten rather than passed to `Error`'s drop (a call).
                std::mem::forget(e);
                return Ok(());
            }
            return Err(e);
        }
        // The rest of the current window, as far as the sink has room: one window check and
        // one release per burst, not per packet.
        let n = self.rx.cons_window_left().min(sink.remaining() as u32);
        if self.rx_meta {
            self.take_into::<true>(sink, n);
        } else {
            self.take_into::<false>(sink, n);
        }
        Ok(())
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        let len = packet.len();
        // The fast path: a frame of untagged size in one UMEM frame, a free TX frame and a
        // free TX slot; anything else (the size rule's errors, a tagged frame's extra 4
        // bytes, multi-buffer frames, a full TX side, a gone interface) takes `send_slow`.
        if len >= ETH_HLEN && len <= self.fast_tx_len && !self.gone.get() {
            if let Some(addr) = self.tx_free.pop() {
                if self.tx.prod_free(1) != 0 {
                    self.umem.write(addr, packet);
                    self.queue_frame(addr, len as u32);
                    return Ok(());
                }
                self.tx_free.push(addr);
            }
        }
        self.send_slow(packet)
    }

    /// Reserves TX frames and slots for the whole burst at once, copies each frame in, and
    /// publishes them with one producer store and one kick. Frames off `send`'s fast path
    /// (see [`Socket::send`]'s size rule, multi-buffer frames) go through `send`.
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        let want = packets.len().min(u32::MAX as usize) as u32;
        let k = if self.gone.get() {
            0
        } else {
            want.min(self.tx_free.len()).min(self.tx.prod_free(want))
        };
        let mut n = 0usize;
        for p in &packets[..k as usize] {
            let len = p.len();
            if len < ETH_HLEN || len > self.fast_tx_len {
                break;
            }
            let Some(addr) = self.tx_free.pop() else {
                break;
            };
            self.umem.write(addr, p);
            self.tx.push(XdpDesc {
                addr,
                len: len as u32,
                options: 0,
            });
            n += 1;
        }
        self.tx_pending.set(self.tx_pending.get() + n as u32);
        for p in &packets[n..] {
            match self.send(p) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => {
                    self.submit_and_kick();
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        self.submit_and_kick();
        Ok(n)
    }

    /// Writes the frame straight into a free TX frame of the UMEM (no copy); frames larger
    /// than a UMEM frame (multi-buffer) are built aside and sent with `send`.
    #[inline]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        // The fast path, as `send`'s: a length no frame can exceed the limit with (untagged
        // size, in one UMEM frame), a free TX frame and slot.
        if len >= ETH_HLEN && len <= self.fast_tx_len && !self.gone.get() {
            if let Some(addr) = self.tx_free.pop() {
                if self.tx.prod_free(1) != 0 {
                    return self.fill_and_queue(addr, len, fill, false);
                }
                self.tx_free.push(addr);
            }
        }
        self.send_with_slow(len, fill)
    }

    /// A received frame of this socket's UMEM is queued itself (its address on the TX ring,
    /// no copy); it goes back to the fill ring once the kernel completes it. Any other
    /// payload (another socket's, another backend's, a multi-buffer frame's jumbo buffer) is
    /// copied by `send` and released.
    fn send_payload<'p, C: Context>(
        &self,
        payload: nethuns_core::Payload<'p, C>,
    ) -> std::result::Result<(), nethuns_core::Unsent<'p, C>> {
        let ours = (payload.context() as &dyn std::any::Any)
            .downcast_ref::<Umem>()
            .is_some_and(|u| {
                u.same_memory(&self.umem) && self.umem.in_frames(payload.buffer_desc().get() as u64)
            });
        let r = if ours {
            self.send_own(payload.buffer_desc().get() as u64, &payload)
        } else {
            self.send(&payload).map(|()| false)
        };
        match r {
            Ok(true) => {
                // The frame is on the TX ring now: ownership passes to the ring (the ledger
                // forgets it; the completion recycles it).
                let _ = payload.into_token().into_raw();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => Err(nethuns_core::Unsent { error, payload }),
        }
    }

    fn flush(&self) {
        self.submit_and_kick();
    }

    /// Publishes what `send` queued and kicks the kernel, like `flush`, and reports a kick
    /// that failed: [`Error::InterfaceDown`] when the interface is down or deleted (the
    /// frames stay on the TX ring and leave once it is back up), [`Error::Os`] with the errno
    /// for anything else. A busy device queue (`EAGAIN`, `ENOBUFS`) is not an error.
    fn try_flush(&self) -> Result<()> {
        match self.submit_and_kick() {
            Kick::Ok => Ok(()),
            Kick::Down(errno) => {
                if errno.is_none() && self.link_is_up() {
                    // Stalled, but the link is up: the device queue is busy; the frames
                    // leave with a later flush.
                    return Ok(());
                }
                Err(Error::InterfaceDown(self.ifname.clone()))
            }
            Kick::Failed(errno) => Err(Error::os(
                format!(
                    "AF_XDP TX wakeup (sendto) on {} queue {}",
                    self.ifname, self.queue
                ),
                io::Error::from_raw_os_error(errno),
            )),
        }
    }

    /// Counted by nethuns: `received` (frames handed out by `recv`/`recv_token`), `sent`
    /// (frames published on the TX ring: by a flush or every 64 sends; a frame queued by
    /// `send` and not yet flushed is not counted). From `XDP_STATISTICS`: `dropped` =
    /// `rx_dropped` (in copy mode, a frame that found the fill ring empty) + `rx_ring_full`
    /// (the RX ring was full). `rx_fill_ring_empty_descs` is left out: it counts the kernel's
    /// failed attempts to take a frame, not frames (in copy mode each such frame is already in
    /// `rx_dropped`; zero-copy drivers count once per failed batch). Frames a zero-copy NIC
    /// drops in hardware for want of a frame never reach the socket and are counted only by
    /// the driver (`ethtool -S`). `filtered` is `None` (no filters). `send_errors` =
    /// `tx_invalid_descs` + sends refused by the size rule or because the interface was down
    /// or gone (`NoMemory`, a full TX side, is back-pressure and not counted).
    fn stats(&self) -> Result<Stats> {
        let n = self.native_stats()?;
        Ok(Stats {
            received: self.handed_out.get(),
            dropped: Some(n.rx_dropped + n.rx_ring_full),
            filtered: None,
            sent: self.sent.get(),
            send_errors: n.tx_invalid_descs + self.refused.get(),
        })
    }

    /// `max_frame` = MTU + 14 (the MTU read at creation; a tagged frame may be 4 bytes
    /// longer), `min_frame` = 14, no timestamps (AF_XDP descriptors carry none), no filters,
    /// `pollable_fd` = [`Sock::wait_fd`] (the XSK socket and link events: it also wakes when
    /// the interface is deleted, which the XSK socket alone does not). `zero_copy` is `true` in every mode: nethuns never
    /// copies a received frame, the payload is the UMEM frame the kernel wrote (in copy mode
    /// the *kernel* copied it there from its own buffer; [`Sock::is_zero_copy`] says whether
    /// the driver DMAs straight into the UMEM).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_frame: self.max_tx_len,
            min_frame: ETH_HLEN,
            timestamps: false,
            zero_copy: true,
            pollable_fd: Some(self.wait_set.as_raw_fd()),
            filters: false,
        }
    }

    fn create(portspec: &str, queue: Option<usize>, flags: AfXdpFlags) -> Result<Self> {
        Sock::open(
            portspec,
            queue,
            flags,
            crate::AfXdpOptions::process_default(),
        )
    }

    #[inline]
    fn context(&self) -> &Umem {
        &self.umem
    }
}
