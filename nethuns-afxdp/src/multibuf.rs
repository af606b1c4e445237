//! Multi-buffer frames (`XDP_USE_SG`, Linux 6.6+): a frame larger than a UMEM frame, on an
//! interface whose MTU needs it, spans several descriptors, all but the last marked
//! `XDP_PKT_CONTD`.
//!
//! The API decision: a `Payload` is one contiguous slice on every backend, so a multi-buffer
//! frame is *linearised at receive*: its segments are copied, in order, into one of the
//! socket's jumbo buffers (mapped after the UMEM, one per `segments` receive frames), and the
//! segments go straight back to the fill ring. The payload or token is that jumbo buffer,
//! released like any frame. (AF_XDP in copy mode has copied every frame once already; this is
//! the second copy, for multi-buffer frames only; single-buffer frames stay zero-copy.) Sending
//! works the same way in reverse: `send` splits a frame larger than a UMEM frame over as many
//! TX frames, chained with `XDP_PKT_CONTD`.

use nethuns_core::{BufferDesc, Context, Error, Result, Token};

use crate::abi::XdpDesc;
use crate::sock::Sock;
use crate::Meta;

impl Sock {
    /// Receives the multi-buffer frame whose first descriptor `first` was just popped: copies
    /// its segments into a jumbo buffer, recycles them, and hands the buffer out.
    #[cold]
    pub(crate) fn recv_multi(&self, first: XdpDesc) -> Result<(Token, Meta)> {
        let jumbo = match self.take_jumbo() {
            Some(j) => j,
            None => {
                // Every jumbo buffer is held: leave the frame on the ring for later.
                self.rx.unpop();
                return Err(Error::NoMemory);
            }
        };
        let dst = self.umem.addr_of(jumbo);
        let cap = self.umem.jumbo_size();
        let seg_room = self.layout.frame_size as u64;
        let (mut total, mut copied) = (0usize, 0usize);
        let mut d = first;
        loop {
            let n = (d.len as usize).min(cap - copied);
            // A descriptor reaches past its frame only if the kernel is broken: never copy
            // outside it.
            let n = n.min((seg_room - (d.addr & (seg_room - 1))) as usize);
            self.umem.copy_within(d.addr, dst + copied as u64, n);
            copied += n;
            total += d.len as usize;
            self.rx_spare.borrow_mut().push(d.addr & !(seg_room - 1));
            if d.options & libc::XDP_PKT_CONTD == 0 {
                break;
            }
            // The kernel publishes a frame's descriptors together: the rest is there.
            if self.rx.window_done() && self.rx.more() == 0 {
                break;
            }
            d = self.rx.pop();
        }
        self.umem.mark_out(jumbo);
        self.handed_out.set(self.handed_out.get() + 1);
        let meta = self.meta_for(
            first.addr,
            total as u32,
            first.options,
            (dst, copied as u32),
        );
        // SAFETY: the jumbo buffer leaves every list until this token's payload releases it;
        // `copied` fits in it.
        let token = unsafe {
            Token::new(
                BufferDesc::new(dst as usize),
                copied as u32,
                self.umem.pool_id(),
            )
        };
        Ok((token, meta))
    }

    /// A free jumbo buffer, after taking back the released ones if none is free.
    fn take_jumbo(&self) -> Option<u32> {
        if let Some(j) = self.jumbo_free.borrow_mut().pop() {
            return Some(j);
        }
        self.refill();
        self.jumbo_free.borrow_mut().pop()
    }

    /// Queues `packet`, larger than a UMEM frame, as a chain of TX frames.
    #[cold]
    pub(crate) fn send_multi(&self, packet: &[u8]) -> Result<()> {
        let fs = self.layout.frame_size as usize;
        let k = packet.len().div_ceil(fs);
        if (self.tx_free.len() as usize) < k || self.tx.free_slots(k as u32) < k as u32 {
            self.submit_and_kick();
            if (self.tx_free.len() as usize) < k || self.tx.free_slots(k as u32) < k as u32 {
                return Err(Error::NoMemory);
            }
        }
        let free = &self.tx_free;
        for (i, chunk) in packet.chunks(fs).enumerate() {
            let Some(addr) = free.pop() else {
                unreachable!("{k} TX frames were checked free above")
            };
            self.umem.write(addr, chunk);
            self.tx.push(XdpDesc {
                addr,
                len: chunk.len() as u32,
                options: if i + 1 < k { libc::XDP_PKT_CONTD } else { 0 },
            });
        }
        self.queued_one();
        Ok(())
    }
}
