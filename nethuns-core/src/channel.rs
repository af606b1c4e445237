//! The channel API: a receiving thread moves batches of [`Token`]s to processing threads over
//! a bounded channel; the processing side turns them back into [`Payload`]s with its clone of
//! the context. The channel is the caller's choice: `flume::bounded(n)` (the spec's) or
//! `crossbeam_channel::bounded(n)` (see [`IntoBatchChannel`]).
//!
//! A batch is a fixed array moved by value, so a bounded channel moves packets with no heap
//! allocation per batch or per packet.
//!
//! ```
//! use nethuns_core::{channel::{Batch, NethunsPopper, NethunsPusher}, pool::PoolContext, Context};
//!
//! let ctx = PoolContext::new(8, 64);
//! let (tx, rx) = crossbeam_channel::bounded::<Batch<4>>(16);
//! let mut pusher = NethunsPusher::new(tx, ctx.pool_id());
//! let popper = NethunsPopper::new(rx, ctx.clone());
//! for i in 0..6u8 {
//!     pusher.push_token(ctx.alloc_token(&[i]).unwrap()).unwrap();
//! }
//! pusher.flush().unwrap();
//! drop(pusher);
//! let mut seen = vec![];
//! while let Some(batch) = popper.pop() {
//!     seen.extend(batch.into_iter().map(|p| p[0]));
//! }
//! assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
//! assert_eq!(ctx.free_buffers(), 8);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::{Context, ForeignToken};
use crate::error::{Error, Result};
use crate::token::{Payload, Token};

/// Up to `N` tokens, moved through a channel by value.
#[derive(Debug)]
pub struct Batch<const N: usize> {
    tokens: [Option<Token>; N],
    len: usize,
}

impl<const N: usize> Default for Batch<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Batch<N> {
    /// An empty batch.
    pub fn new() -> Self {
        Batch {
            tokens: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    /// Adds a token, or gives it back if the batch is full.
    #[inline]
    pub fn push(&mut self, token: Token) -> std::result::Result<(), Token> {
        if self.len == N {
            return Err(token);
        }
        self.tokens[self.len] = Some(token);
        self.len += 1;
        Ok(())
    }

    /// Number of tokens in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch holds no token.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the batch holds `N` tokens.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Takes the tokens out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Token> + '_ {
        let n = std::mem::take(&mut self.len);
        self.tokens[..n].iter_mut().filter_map(Option::take)
    }
}

/// The two ends of a crossbeam channel of batches, as `crossbeam_channel::bounded(n)` returns
/// them.
pub type BatchChannel<const N: usize> = (
    crossbeam_channel::Sender<Batch<N>>,
    crossbeam_channel::Receiver<Batch<N>>,
);

/// The two ends of a flume channel of batches, as `flume::bounded(n)` returns them.
pub type FlumeBatchChannel<const N: usize> = (flume::Sender<Batch<N>>, flume::Receiver<Batch<N>>);

/// The sending end of a channel of batches: flume's or crossbeam's.
#[derive(Debug, Clone)]
pub enum Sender<T> {
    /// A flume sender.
    Flume(flume::Sender<T>),
    /// A crossbeam-channel sender.
    Crossbeam(crossbeam_channel::Sender<T>),
}

/// The receiving end of a channel of batches: flume's or crossbeam's.
#[derive(Debug, Clone)]
pub enum Receiver<T> {
    /// A flume receiver.
    Flume(flume::Receiver<T>),
    /// A crossbeam-channel receiver.
    Crossbeam(crossbeam_channel::Receiver<T>),
}

impl<T> Sender<T> {
    /// Sends, blocking while the channel is full; gives the value back if every receiver is
    /// gone.
    #[inline]
    fn send(&self, v: T) -> std::result::Result<(), T> {
        match self {
            Sender::Flume(s) => s.send(v).map_err(|e| e.into_inner()),
            Sender::Crossbeam(s) => s.send(v).map_err(|e| e.into_inner()),
        }
    }
}

enum TryRecv<T> {
    Got(T),
    Empty,
    Closed,
}

impl<T> Receiver<T> {
    #[inline]
    fn recv(&self) -> Option<T> {
        match self {
            Receiver::Flume(r) => r.recv().ok(),
            Receiver::Crossbeam(r) => r.recv().ok(),
        }
    }

    #[inline]
    fn try_recv(&self) -> TryRecv<T> {
        match self {
            Receiver::Flume(r) => match r.try_recv() {
                Ok(v) => TryRecv::Got(v),
                Err(flume::TryRecvError::Empty) => TryRecv::Empty,
                Err(flume::TryRecvError::Disconnected) => TryRecv::Closed,
            },
            Receiver::Crossbeam(r) => match r.try_recv() {
                Ok(v) => TryRecv::Got(v),
                Err(crossbeam_channel::TryRecvError::Empty) => TryRecv::Empty,
                Err(crossbeam_channel::TryRecvError::Disconnected) => TryRecv::Closed,
            },
        }
    }
}

impl<T> From<flume::Sender<T>> for Sender<T> {
    fn from(s: flume::Sender<T>) -> Self {
        Sender::Flume(s)
    }
}

impl<T> From<crossbeam_channel::Sender<T>> for Sender<T> {
    fn from(s: crossbeam_channel::Sender<T>) -> Self {
        Sender::Crossbeam(s)
    }
}

impl<T> From<flume::Receiver<T>> for Receiver<T> {
    fn from(r: flume::Receiver<T>) -> Self {
        Receiver::Flume(r)
    }
}

impl<T> From<crossbeam_channel::Receiver<T>> for Receiver<T> {
    fn from(r: crossbeam_channel::Receiver<T>) -> Self {
        Receiver::Crossbeam(r)
    }
}

/// A pair of channel ends that [`Socket::create_with_channel`](crate::Socket) accepts:
/// `flume::bounded(n)` or `crossbeam_channel::bounded(n)`, with the batch type inferred.
pub trait IntoBatchChannel<const N: usize> {
    /// The two ends, as nethuns' [`Sender`] / [`Receiver`].
    fn into_ends(self) -> (Sender<Batch<N>>, Receiver<Batch<N>>);
}

impl<const N: usize> IntoBatchChannel<N> for FlumeBatchChannel<N> {
    fn into_ends(self) -> (Sender<Batch<N>>, Receiver<Batch<N>>) {
        (self.0.into(), self.1.into())
    }
}

impl<const N: usize> IntoBatchChannel<N> for BatchChannel<N> {
    fn into_ends(self) -> (Sender<Batch<N>>, Receiver<Batch<N>>) {
        (self.0.into(), self.1.into())
    }
}

/// The receiving thread's end: collects tokens into batches and sends full batches.
#[derive(Debug)]
pub struct NethunsPusher<const N: usize> {
    tx: Sender<Batch<N>>,
    cur: Batch<N>,
    pool_id: u32,
}

impl<const N: usize> NethunsPusher<N> {
    /// A pusher for tokens of the context whose pool id is `pool_id`, over a flume or
    /// crossbeam sender.
    pub fn new(tx: impl Into<Sender<Batch<N>>>, pool_id: u32) -> Self {
        NethunsPusher {
            tx: tx.into(),
            cur: Batch::new(),
            pool_id,
        }
    }

    /// Sends a whole batch (blocking while the channel is full). Errors:
    /// [`Error::ForeignToken`] if a token is of another pool (the batch is not sent; its tokens
    /// are dropped and counted as leaked), [`Error::ChannelClosed`] if every popper is gone.
    pub fn push(&self, batch: Batch<N>) -> Result<()> {
        if let Some(t) = batch.tokens[..batch.len]
            .iter()
            .flatten()
            .find(|t| t.pool_id() != self.pool_id)
        {
            return Err(Error::ForeignToken {
                token_pool: t.pool_id(),
                context_pool: self.pool_id,
            });
        }
        // A closed channel gives the batch back; dropping it drops the tokens (counted as
        // leaked): nobody is left to use them.
        self.tx.send(batch).map_err(|_| Error::ChannelClosed)
    }

    /// Adds one token to the current batch and sends the batch when it is full.
    #[inline]
    pub fn push_token(&mut self, token: Token) -> std::result::Result<(), ForeignToken> {
        if token.pool_id() != self.pool_id {
            return Err(ForeignToken {
                context_pool: self.pool_id,
                token,
            });
        }
        if let Err(t) = self.cur.push(token) {
            // Unreachable: the batch is sent as soon as it fills. Kept total.
            let _ = self.send_current();
            let _ = self.cur.push(t);
        }
        if self.cur.is_full() {
            // A closed channel drops the tokens (counted as leaked): nobody is left to use them.
            let _ = self.send_current();
        }
        Ok(())
    }

    /// Pushes every packet left in a burst from [`Socket::recv_batch`](crate::Socket::recv_batch)
    /// (their metadata is dropped), sending each batch that fills up; returns how many were
    /// pushed. A burst of another pool than this pusher's is refused whole and left as it is
    /// ([`Error::ForeignToken`]); a closed channel is [`Error::ChannelClosed`] (the packets
    /// of the batch that could not be sent are lost, as with [`NethunsPusher::push_token`]).
    ///
    /// ```no_run
    /// # use nethuns_core::{batch, Socket};
    /// # fn demo<S: Socket>(sock: &S, pusher: &mut nethuns_core::channel::NethunsPusher<32>)
    /// # -> nethuns_core::Result<()> {
    /// let mut buf = batch::buffer::<S::Metadata, 32>();
    /// let mut burst = sock.recv_batch(&mut buf)?;
    /// pusher.push_received(&mut burst)?;
    /// pusher.flush()?;
    /// # Ok(()) }
    /// ```
    pub fn push_received<C: Context, M>(
        &mut self,
        burst: &mut crate::batch::Received<'_, C, M>,
    ) -> Result<usize> {
        let pool = burst.context().pool_id();
        if pool != self.pool_id && !crate::batch::Received::is_empty(burst) {
            return Err(Error::ForeignToken {
                token_pool: pool,
                context_pool: self.pool_id,
            });
        }
        let mut n = 0;
        while let Some((token, _meta)) = burst.next_token() {
            // Room: a full batch is sent as soon as it fills.
            if let Err(t) = self.cur.push(token) {
                self.send_current()?;
                let _ = self.cur.push(t);
            }
            n += 1;
            if self.cur.is_full() {
                self.send_current()?;
            }
        }
        Ok(n)
    }

    /// Sends the partial batch, if any.
    pub fn flush(&mut self) -> Result<()> {
        if self.cur.is_empty() {
            return Ok(());
        }
        self.send_current()
    }

    fn send_current(&mut self) -> Result<()> {
        let b = std::mem::take(&mut self.cur);
        self.tx.send(b).map_err(|_| Error::ChannelClosed)
    }
}

/// The processing thread's end: receives batches and turns their tokens into payloads of its
/// context.
#[derive(Debug)]
pub struct NethunsPopper<Ctx: Context, const N: usize> {
    rx: Receiver<Batch<N>>,
    ctx: Ctx,
    foreign: AtomicU64,
}

impl<Ctx: Context, const N: usize> NethunsPopper<Ctx, N> {
    /// A popper turning tokens into payloads of `ctx`, over a flume or crossbeam receiver.
    pub fn new(rx: impl Into<Receiver<Batch<N>>>, ctx: Ctx) -> Self {
        NethunsPopper {
            rx: rx.into(),
            ctx,
            foreign: AtomicU64::new(0),
        }
    }

    /// Waits for the next batch; `None` once every pusher is gone and the channel is empty.
    pub fn pop(&self) -> Option<PayloadBatch<'_, Ctx, N>> {
        self.rx.recv().map(|b| self.wrap(b))
    }

    /// The next batch if one is waiting.
    pub fn try_pop(&self) -> Result<Option<PayloadBatch<'_, Ctx, N>>> {
        match self.rx.try_recv() {
            TryRecv::Got(b) => Ok(Some(self.wrap(b))),
            TryRecv::Empty => Ok(None),
            TryRecv::Closed => Err(Error::ChannelClosed),
        }
    }

    /// The context payloads are made with.
    pub fn context(&self) -> &Ctx {
        &self.ctx
    }

    /// How many tokens of another pool arrived (sent around the pusher) and were dropped.
    pub fn foreign_tokens(&self) -> u64 {
        self.foreign.load(Ordering::Relaxed)
    }

    fn wrap(&self, batch: Batch<N>) -> PayloadBatch<'_, Ctx, N> {
        PayloadBatch {
            batch,
            pos: 0,
            popper: self,
        }
    }
}

/// A received batch: iterate it to get payloads, in the order they were pushed. Tokens not
/// iterated are released when the batch is dropped.
pub struct PayloadBatch<'a, Ctx: Context, const N: usize> {
    batch: Batch<N>,
    pos: usize,
    popper: &'a NethunsPopper<Ctx, N>,
}

impl<Ctx: Context, const N: usize> PayloadBatch<'_, Ctx, N> {
    /// Number of packets not yet taken from the batch.
    pub fn len(&self) -> usize {
        self.batch.len - self.pos
    }

    /// Whether every packet has been taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a, Ctx: Context, const N: usize> Iterator for PayloadBatch<'a, Ctx, N> {
    type Item = Payload<'a, Ctx>;

    fn next(&mut self) -> Option<Payload<'a, Ctx>> {
        while self.pos < self.batch.len {
            let t = self.batch.tokens[self.pos].take();
            self.pos += 1;
            if let Some(t) = t {
                match self.popper.ctx.try_packet(t) {
                    Ok(p) => return Some(p),
                    Err(f) => {
                        self.popper.foreign.fetch_add(1, Ordering::Relaxed);
                        drop(f);
                    }
                }
            }
        }
        None
    }
}

impl<Ctx: Context, const N: usize> Drop for PayloadBatch<'_, Ctx, N> {
    fn drop(&mut self) {
        for p in self.by_ref() {
            drop(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{buffer, BatchSink};
    use crate::pool::PoolContext;

    /// A burst of `n` packets of `ctx` (bytes 0..n) in `buf`.
    fn burst<'a>(
        ctx: &'a PoolContext,
        buf: &'a mut [crate::batch::Slot<()>],
        n: u8,
    ) -> crate::batch::Received<'a, PoolContext, ()> {
        let mut sink = BatchSink::new(buf);
        for i in 0..n {
            let t = ctx.alloc_token(&[i; 8]).unwrap();
            assert!(sink.push(t, ()).is_ok());
        }
        // SAFETY: every token came from ctx.
        unsafe { sink.into_received(ctx) }
    }

    #[test]
    fn a_burst_is_pushed_whole_in_order_and_a_foreign_one_is_left_alone() {
        let ctx = PoolContext::new(64, 16);
        let (s, r) = crossbeam_channel::unbounded::<Batch<4>>();
        let mut pusher = NethunsPusher::new(s, ctx.pool_id());
        let popper = NethunsPopper::new(r, ctx.clone());
        let mut buf = buffer::<(), 32>();
        let mut got = burst(&ctx, &mut buf, 10);
        got.next(); // one taken by the caller: the other 9 are pushed.
        assert_eq!(pusher.push_received(&mut got).unwrap(), 9);
        assert!(got.is_empty());
        drop(got);
        pusher.flush().unwrap();
        let mut seen = vec![];
        while let Ok(Some(b)) = popper.try_pop() {
            seen.extend(b.map(|p| p[0]));
        }
        assert_eq!(seen, (1..10).collect::<Vec<u8>>());
        let other = PoolContext::new(8, 16);
        let mut buf2 = buffer::<(), 8>();
        let mut foreign = burst(&other, &mut buf2, 3);
        assert!(matches!(
            pusher.push_received(&mut foreign),
            Err(Error::ForeignToken { .. })
        ));
        assert_eq!(foreign.len(), 3);
        drop(foreign);
        assert_eq!(other.free_buffers(), 8);
        assert_eq!(ctx.free_buffers(), 64);
    }
}
