//! The live receive path: libpcap's own `pcap_dispatch` with a callback that copies each
//! packet straight into a buffer of the socket's pool, one packet for `recv`, a burst for
//! `recv_batch`.
//!
//! `pcap_next_ex` (what the `pcap` crate's `next_packet` calls) is `pcap_dispatch` for one
//! packet through a callback that copies the header out, then returns a pointer into the
//! ring; dispatching to our own callback does the copy into the pool where libpcap hands the
//! frame over, and a burst of N packets is one call into libpcap instead of N.

use std::cell::RefCell;
use std::collections::VecDeque;

use nethuns_core::batch::BatchSink;
use nethuns_core::metadata::TsPrecision;
use nethuns_core::pool::PoolContext;
use nethuns_core::Context;
use pcap::{Activated, Capture, PacketHeader};

use crate::context::Fresh;
use crate::sys::{self, DispatchResult};
use crate::Meta;

/// Packets that libpcap handed over while the pool had no buffer left for them (another
/// holder of the context took buffers between the count and the dispatch): kept here and
/// delivered first by the next receive, never dropped.
#[derive(Default)]
pub(crate) struct Backlog(VecDeque<(Box<[u8]>, PacketHeader)>);

impl Backlog {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn pop(&mut self) -> Option<(Box<[u8]>, PacketHeader)> {
        self.0.pop_front()
    }

    pub(crate) fn push_front(&mut self, item: (Box<[u8]>, PacketHeader)) {
        self.0.push_front(item)
    }

    #[cold]
    fn keep(&mut self, h: &PacketHeader, data: &[u8]) {
        self.0.push_back((data.into(), *h))
    }
}

/// The metadata of a packet libpcap stamped at `precision` (a nanosecond handle puts
/// nanoseconds in `tv_usec`), `caplen` bytes of it in `buf`.
#[inline]
pub(crate) fn meta(precision: TsPrecision, h: &PacketHeader, caplen: u32, buf: &[u8]) -> Meta {
    let vlan = nethuns_core::frame::outer_vlan(buf);
    // A savefile is outside input: a record claiming a wire length under its captured
    // length still reports `len >= caplen`.
    let len = h.len.max(h.caplen);
    match precision {
        TsPrecision::Micro => Meta::new(h.ts, len, caplen, vlan),
        TsPrecision::Nano => Meta::with_nanos(h.ts.tv_sec, h.ts.tv_usec as u32, len, caplen, vlan),
    }
}

/// A packet copied into a buffer of `ctx`, with its metadata; `None` if the pool had no
/// buffer left (the packet is then kept in `backlog`).
#[inline(always)]
pub(crate) fn copy_packet<'c>(
    ctx: &'c PoolContext,
    precision: TsPrecision,
    backlog: &RefCell<Backlog>,
    h: &PacketHeader,
    data: &[u8],
) -> Option<(Fresh<'c>, Meta)> {
    let Some(fresh) = Fresh::copy_in(ctx, data) else {
        backlog.borrow_mut().keep(h, data);
        return None;
    };
    let n = fresh.len();
    Some((fresh, meta(precision, h, n as u32, &data[..n])))
}

/// What a one-packet receive found.
pub(crate) enum One<'c> {
    /// A packet, in a buffer of the pool.
    Packet(Fresh<'c>, Meta),
    /// Nothing waiting.
    Empty,
    /// A packet, kept in the backlog: the pool had no buffer left for it.
    Backlogged,
}

/// Receives at most one packet of `cap` into a buffer of `ctx`.
#[inline(always)]
pub(crate) fn recv_one<'c, T: Activated + ?Sized>(
    cap: &mut Capture<T>,
    ctx: &'c PoolContext,
    precision: TsPrecision,
    backlog: &RefCell<Backlog>,
) -> Result<One<'c>, pcap::Error> {
    let mut got = None;
    let n = sys::dispatch(cap, 1, &mut |h, data| {
        got = copy_packet(ctx, precision, backlog, h, data);
    })?;
    Ok(match got {
        Some((f, m)) => One::Packet(f, m),
        None if n == 0 => One::Empty,
        None => One::Backlogged,
    })
}

/// Receives up to `cnt` packets of `cap` into `sink`; packets for which the pool had no
/// buffer go to `backlog`.
pub(crate) fn recv_burst<T: Activated + ?Sized>(
    cap: &mut Capture<T>,
    ctx: &PoolContext,
    cnt: usize,
    sink: &mut BatchSink<'_, Meta>,
    precision: TsPrecision,
    backlog: &RefCell<Backlog>,
) -> DispatchResult {
    sys::dispatch(cap, cnt, &mut |h, data| {
        let Some((fresh, meta)) = copy_packet(ctx, precision, backlog, h, data) else {
            return;
        };
        if let Err((tok, _)) = sink.push(fresh.into_token(), meta) {
            // Unreachable: the dispatch asked for at most the sink's room. Kept total.
            drop(ctx.packet(tok));
        }
    })
}
