//! Batch receive: [`Socket::recv_batch`](crate::Socket::recv_batch) fills caller-owned
//! storage with up to N packets in one call; the [`Received`] it returns hands them out and
//! releases whatever the caller does not take.
//!
//! ```no_run
//! # use nethuns_core::{Socket, batch};
//! # fn demo<S: Socket>(sock: &S) -> nethuns_core::Result<()> {
//! let mut buf = batch::buffer::<S::Metadata, 32>();
//! let mut bytes = 0;
//! for (payload, _meta) in sock.recv_batch(&mut buf)? {
//!     bytes += payload.len();
//! }
//! # Ok(()) }
//! ```
//!
//! Safety without trust: a backend fills the storage only through [`BatchSink::push`], which
//! counts what it wrote, so [`Received`] never reads a slot that was not written, whatever
//! the backend does; and a packet the caller leaves in a [`Received`] is released when it is
//! dropped (a `mem::forget` of it loses the buffers, as a dropped [`Token`] does, but is never
//! undefined behaviour).

use std::mem::MaybeUninit;

use crate::context::Context;
use crate::token::{Payload, Token};

/// One slot of batch storage: a received packet's token and metadata, once written.
pub type Slot<M> = MaybeUninit<(Token, M)>;

/// Storage for `N` received packets, uninitialized; reuse it across calls.
pub fn buffer<M, const N: usize>() -> [Slot<M>; N] {
    std::array::from_fn(|_| MaybeUninit::uninit())
}

/// Where a backend writes received packets: the first `len` slots of the storage are
/// written, the rest not. [`Socket::recv_batch`](crate::Socket::recv_batch) always turns it
/// into a [`Received`], which releases what was written (a sink merely dropped would leave
/// its tokens unreleased, never read).
pub struct BatchSink<'a, M> {
    slots: &'a mut [Slot<M>],
    len: usize,
}

impl<'a, M> BatchSink<'a, M> {
    /// An empty sink over `slots`.
    #[inline]
    pub fn new(slots: &'a mut [Slot<M>]) -> Self {
        BatchSink { slots, len: 0 }
    }

    /// Adds a packet; hands it back if the sink is full.
    #[inline]
    pub fn push(&mut self, token: Token, meta: M) -> std::result::Result<(), (Token, M)> {
        match self.slots.get_mut(self.len) {
            Some(s) => {
                s.write((token, meta));
                self.len += 1;
                Ok(())
            }
            None => Err((token, meta)),
        }
    }

    /// Packets written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots still free.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.slots.len() - self.len
    }

    /// Turns the written slots into a [`Received`] over context `ctx`, which every token
    /// pushed must belong to (the receiving socket's context).
    ///
    /// # Safety
    /// Every token pushed belongs to `ctx`.
    #[inline]
    pub unsafe fn into_received<C: Context>(self, ctx: &'a C) -> Received<'a, C, M> {
        Received {
            ctx,
            slots: self.slots,
            next: 0,
            len: self.len,
        }
    }
}

/// Packets received by one [`Socket::recv_batch`](crate::Socket::recv_batch) call. Iterate
/// it for `(Payload, Metadata)` pairs (or take tokens with [`Received::next_token`]); the
/// packets not taken are released when it is dropped.
pub struct Received<'a, C: Context, M> {
    ctx: &'a C,
    slots: &'a mut [Slot<M>],
    /// Slots `next..len` are written and not yet handed out.
    next: usize,
    len: usize,
}

impl<'a, C: Context, M> Received<'a, C, M> {
    /// The context the packets belong to (the receiving socket's).
    #[inline]
    pub fn context(&self) -> &'a C {
        self.ctx
    }

    /// Packets not yet handed out.
    #[inline]
    pub fn len(&self) -> usize {
        self.len - self.next
    }

    /// Bytes of the packets not yet handed out.
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.slots[self.next..self.len]
            .iter()
            // SAFETY: slots next..len are written (BatchSink::push) and not yet read out.
            .map(|s| u64::from(unsafe { s.assume_init_ref() }.0.size()))
            .sum()
    }

    /// Whether every packet was handed out (or none came).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.next == self.len
    }

    /// The next packet as a token and its metadata (for a channel, another thread).
    #[inline]
    pub fn next_token(&mut self) -> Option<(Token, M)> {
        if self.next == self.len {
            return None;
        }
        // SAFETY: slots next..len are written (BatchSink::push) and each is read once: `next`
        // moves past it.
        let item = unsafe { self.slots[self.next].assume_init_read() };
        self.next += 1;
        Some(item)
    }
}

impl<'a, C: Context, M> Iterator for Received<'a, C, M> {
    type Item = (Payload<'a, C>, M);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (token, meta) = self.next_token()?;
        // SAFETY: every token pushed belongs to `ctx` (BatchSink::into_received's contract).
        Some((
            unsafe { Payload::from_token_unchecked(token, self.ctx) },
            meta,
        ))
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), Some(self.len()))
    }
}

impl<C: Context, M> ExactSizeIterator for Received<'_, C, M> {}

impl<C: Context, M> Drop for Received<'_, C, M> {
    fn drop(&mut self) {
        // The packets the caller did not take go back to the context.
        for _ in self.by_ref() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolContext;

    #[test]
    fn untaken_packets_are_released_and_overflow_is_handed_back() {
        let ctx = PoolContext::new(8, 64);
        let mut buf = buffer::<u32, 4>();
        let mut sink = BatchSink::new(&mut buf);
        for i in 0..5u32 {
            let t = ctx.alloc_token(&[i as u8; 20]).unwrap();
            if let Err((t, m)) = sink.push(t, i) {
                assert_eq!(m, 4);
                drop(ctx.packet(t));
            }
        }
        assert_eq!(sink.len(), 4);
        // SAFETY: every token came from ctx.
        let mut got = unsafe { sink.into_received(&ctx) };
        let (p, m) = got.next().unwrap();
        assert_eq!((p[0], m), (0, 0));
        assert_eq!(got.len(), 3);
        drop(p);
        drop(got);
        assert_eq!(ctx.free_buffers(), 8);
    }
}
