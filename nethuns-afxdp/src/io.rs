//! The data path of [`Sock`]: receive from the RX ring, recycle frames to the fill ring,
//! transmit through the TX ring, reap the completion ring. All ring traffic is batched: index
//! loads/stores, refills, reaps and wakeup syscalls happen once per batch, not per packet.

use std::io;
use std::os::fd::AsRawFd;

use nethuns_core::{BufferDesc, Context, Error, Result, Socket, Token};

use crate::flags::AfXdpFlags;
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
/// Shortest frame `send` accepts: an Ethernet header.
const ETH_HLEN: usize = 14;

impl Sock {
    /// Moves every released RX frame back to the fill ring, in one batch.
    #[inline]
    pub(crate) fn refill(&self) {
        let mut f = self.umem.take_released();
        if Umem::is_nil(f) {
            return;
        }
        let mut spare = self.rx_spare.borrow_mut();
        let mut n = 0u64;
        loop {
            // Read `next` before the frame can be reused (it is ours now either way).
            let next = self.umem.chain_next(f);
            spare.push(self.umem.addr_of(f));
            n += 1;
            match next {
                Some(x) => f = x,
                None => break,
            }
        }
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
    fn wake_rx(&self) {
        if self.fill.needs_wakeup() {
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
    }

    /// Takes completed TX frames back onto the free list, in one batch.
    pub(crate) fn reap(&self) {
        let n = self.comp.cons_avail(u32::MAX);
        if n == 0 {
            return;
        }
        let mask = !(self.layout.frame_size as u64 - 1);
        let mut free = self.tx_free.borrow_mut();
        for _ in 0..n {
            free.push(self.comp.pop() & mask);
        }
        self.comp.release();
    }

    /// Publishes pending TX descriptors and kicks the kernel while it needs it, until the TX
    /// ring is drained or the kernel cannot progress (bounded).
    fn submit_and_kick(&self) {
        if self.tx_pending.get() > 0 {
            self.tx.submit();
            self.tx_pending.set(0);
        }
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
                Some(Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV)) => {
                    self.link_down.set(true);
                    break;
                }
                // Anything else: stop; frames stay on the ring for the next flush.
                Some(_) => break,
            }
        }
        if stalls >= MAX_STALLS {
            // The kernel took nothing for several calls: the carrier is off or the device
            // queue stopped.
            self.link_down.set(true);
        }
        self.reap();
    }
}

impl Socket for Sock {
    type Context = Umem;
    type Metadata = Meta;
    type Flags = AfXdpFlags;

    #[inline]
    fn recv_token(&self) -> Result<(Token, Meta)> {
        if self.rx.cons_window_done() {
            // End of a batch: give RX slots back, recycle released frames, look again. (At
            // every batch, not only when the ring is empty: under sustained traffic the
            // kernel must see the slots and frames come back, or it drops on a full ring.)
            self.rx.release();
            self.refill();
            if self.rx.cons_avail(RX_BATCH) == 0 {
                self.wake_rx();
                return Err(Error::NoPacket);
            }
        }
        let XdpDesc { addr, len, options } = self.rx.pop();
        self.umem.mark_out(self.umem.frame_of(addr));
        self.handed_out.set(self.handed_out.get() + 1);
        let meta = Meta {
            len,
            queue: self.queue,
            options,
            vlan: None,
        };
        // SAFETY: the kernel handed frame `addr` to us on the RX ring; it leaves every ring
        // and list until this token's payload releases it, and `len` fits in the frame.
        let token = unsafe { Token::new(BufferDesc::new(addr as usize), len, self.umem.pool_id()) };
        Ok((token, meta))
    }

    fn send(&self, packet: &[u8]) -> Result<()> {
        if packet.len() > self.max_tx_len {
            return Err(Error::TooBigPacket(packet.len()));
        }
        if packet.len() < ETH_HLEN {
            return Err(Error::Generic(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "AF_XDP send on {} queue {}: {} bytes is shorter than an Ethernet header",
                    self.ifname,
                    self.queue,
                    packet.len()
                ),
            )));
        }
        let addr = {
            let mut free = self.tx_free.borrow_mut();
            match free.pop() {
                Some(a) => a,
                None => {
                    drop(free);
                    self.submit_and_kick();
                    match self.tx_free.borrow_mut().pop() {
                        Some(a) => a,
                        None if self.link_down.get() && !self.link_is_up() => {
                            return Err(Error::InterfaceDown(self.ifname.clone()))
                        }
                        None => return Err(Error::NoMemory),
                    }
                }
            }
        };
        // Slots free >= frames free (a frame is freed only after its slot was consumed), but
        // the cached consumer index may be stale: refresh it when needed.
        if self.tx.prod_free(1) == 0 {
            self.tx_free.borrow_mut().push(addr);
            self.submit_and_kick();
            return Err(Error::NoMemory);
        }
        self.umem.write(addr, packet);
        self.tx.push(XdpDesc {
            addr,
            len: packet.len() as u32,
            options: 0,
        });
        let pending = self.tx_pending.get() + 1;
        self.tx_pending.set(pending);
        if pending >= TX_BATCH {
            self.submit_and_kick();
        }
        Ok(())
    }

    fn flush(&self) {
        self.submit_and_kick();
    }

    fn create(portspec: &str, queue: Option<usize>, flags: AfXdpFlags) -> Result<Self> {
        Sock::open(portspec, queue, flags)
    }

    #[inline]
    fn context(&self) -> &Umem {
        &self.umem
    }
}
