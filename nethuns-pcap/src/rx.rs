//! The live receive path: libpcap's own `pcap_dispatch` with a callback that copies each
//! packet straight into a buffer of the socket's pool, one packet for `recv`, a burst for
//! `recv_batch`.
//!
//! `pcap_next_ex` (what the `pcap` crate's `next_packet` calls) is `pcap_dispatch` for one
//! packet through a callback that copies the header out, then returns a pointer into the
//! ring; dispatching to our own callback does the copy into the pool where libpcap hands the
//! frame over, and a burst of N packets is one call into libpcap instead of N.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::mem::MaybeUninit;

use nethuns_core::batch::BatchSink;
use nethuns_core::metadata::TsPrecision;
use nethuns_core::pool::PoolContext;
use nethuns_core::{BufferDesc, Context, Token};
use pcap::PacketHeader;

use crate::Meta;

/// libpcap's `pcap_handler`; `pcap::PacketHeader` is `#[repr(C)]` and laid out as
/// `struct pcap_pkthdr` (the `pcap` crate casts one to the other the same way).
type Handler =
    unsafe extern "C" fn(user: *mut c_uchar, h: *const PacketHeader, bytes: *const c_uchar);

extern "C" {
    fn pcap_dispatch(p: *mut c_void, cnt: c_int, cb: Handler, user: *mut c_uchar) -> c_int;
    fn pcap_geterr(p: *mut c_void) -> *const c_char;
}

/// What a dispatch returned: the packets handed to the callback, or libpcap's error text
/// (`-1`).
pub(crate) type DispatchResult = std::result::Result<usize, pcap::Error>;

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
}

/// `pcap_dispatch(p, cnt, cb, user)`, with libpcap's message on an error. `-2`
/// (`pcap_breakloop`, which nothing here calls) counts as no packet.
///
/// # Safety
/// `p` is a live, activated `pcap_t` not used elsewhere during the call; `user` is what `cb`
/// expects.
#[inline]
unsafe fn dispatch(p: *mut c_void, cnt: c_int, cb: Handler, user: *mut c_uchar) -> DispatchResult {
    // SAFETY: forwarded contract.
    let rc = unsafe { pcap_dispatch(p, cnt, cb, user) };
    if rc == -1 {
        return Err(last_error(p));
    }
    Ok(rc.max(0) as usize)
}

/// libpcap's error text of handle `p` (`pcap_geterr`).
#[cold]
fn last_error(p: *mut c_void) -> pcap::Error {
    // SAFETY: `p` is live (the caller's contract); pcap_geterr returns its NUL-terminated
    // error buffer, read before any other call on the handle.
    let msg = unsafe { std::ffi::CStr::from_ptr(pcap_geterr(p)) };
    pcap::Error::PcapError(msg.to_string_lossy().into_owned())
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

/// State of a one-packet dispatch: the buffer to copy into and what came.
struct One<'s> {
    ctx: &'s PoolContext,
    desc: BufferDesc,
    got: bool,
    n: usize,
    hdr: MaybeUninit<PacketHeader>,
}

unsafe extern "C" fn one_cb(user: *mut c_uchar, h: *const PacketHeader, bytes: *const c_uchar) {
    // SAFETY: `user` is the `One` of `recv_one`, alive and not otherwise borrowed during the
    // dispatch; libpcap passes a valid header and `caplen` readable bytes; `recv_one`'s
    // caller owns `desc`, of `ctx`'s pool, whose buffer holds `buffer_size` bytes.
    unsafe {
        let st = &mut *user.cast::<One<'_>>();
        let hdr = *h;
        let n = (hdr.caplen as usize).min(st.ctx.buffer_size());
        let dst = st.ctx.pool().buffer_ptr(st.desc, n).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes, dst, n);
        st.hdr.write(hdr);
        st.n = n;
        st.got = true;
    }
}

/// Receives at most one packet of `p` into buffer `desc` of `ctx`: its length and header,
/// `None` if none was waiting.
///
/// # Safety
/// `p` is a live, activated `pcap_t` used by nobody else during the call; the caller owns
/// `desc`, a buffer of `ctx`'s pool.
#[inline]
pub(crate) unsafe fn recv_one(
    p: *mut c_void,
    ctx: &PoolContext,
    desc: BufferDesc,
) -> std::result::Result<Option<(usize, PacketHeader)>, pcap::Error> {
    let mut st = One {
        ctx,
        desc,
        got: false,
        n: 0,
        hdr: MaybeUninit::uninit(),
    };
    // SAFETY: `p` per the contract; `st` outlives the call and is what `one_cb` expects.
    unsafe { dispatch(p, 1, one_cb, (&mut st as *mut One<'_>).cast())? };
    if !st.got {
        return Ok(None);
    }
    // SAFETY: `got` is set only after `hdr` was written.
    Ok(Some((st.n, unsafe { st.hdr.assume_init() })))
}

/// State of a burst dispatch.
struct Burst<'s, 'a> {
    ctx: &'s PoolContext,
    /// A buffer taken before the dispatch, used first.
    spare: Option<BufferDesc>,
    sink: &'s mut BatchSink<'a, Meta>,
    precision: TsPrecision,
    backlog: &'s std::cell::RefCell<Backlog>,
}

unsafe extern "C" fn burst_cb(user: *mut c_uchar, h: *const PacketHeader, bytes: *const c_uchar) {
    // SAFETY: `user` is the `Burst` of `recv_burst`, alive and not otherwise borrowed during
    // the dispatch; libpcap passes a valid header and `caplen` readable bytes.
    let (st, hdr, data) = unsafe {
        let hdr = *h;
        (
            &mut *user.cast::<Burst<'_, '_>>(),
            hdr,
            std::slice::from_raw_parts(bytes, hdr.caplen as usize),
        )
    };
    let desc = match st.spare.take() {
        Some(d) => d,
        None => match st.ctx.pool().get() {
            Some(d) => d,
            None => {
                st.backlog.borrow_mut().0.push_back((data.into(), hdr));
                return;
            }
        },
    };
    let n = data.len().min(st.ctx.buffer_size());
    // SAFETY: `desc` was taken from the pool above and is owned by this call.
    let buf = unsafe { &mut *st.ctx.pool().buffer_ptr(desc, n) };
    buf.copy_from_slice(&data[..n]);
    let meta = meta(st.precision, &hdr, n as u32, buf);
    // SAFETY: ownership of `desc` passes to the token; n ≤ buffer size.
    let tok = unsafe { Token::new(desc, n as u32, st.ctx.pool_id()) };
    if let Err((tok, _)) = st.sink.push(tok, meta) {
        // Unreachable: the dispatch asked for at most the sink's room. Kept total.
        drop(st.ctx.packet(tok));
    }
}

/// Receives up to `cnt` packets of `p` into `sink`, starting with buffer `spare`; packets
/// for which the pool had no buffer go to `backlog`. Returns the spare buffer if unused.
///
/// # Safety
/// `p` is a live, activated `pcap_t` used by nobody else during the call; the caller owns
/// `spare`, a buffer of `ctx`'s pool.
pub(crate) unsafe fn recv_burst(
    p: *mut c_void,
    ctx: &PoolContext,
    spare: Option<BufferDesc>,
    cnt: usize,
    sink: &mut BatchSink<'_, Meta>,
    precision: TsPrecision,
    backlog: &std::cell::RefCell<Backlog>,
) -> (Option<BufferDesc>, DispatchResult) {
    let mut st = Burst {
        ctx,
        spare,
        sink,
        precision,
        backlog,
    };
    let cnt = cnt.min(c_int::MAX as usize) as c_int;
    // SAFETY: `p` per the contract; `st` outlives the call and is what `burst_cb` expects.
    let r = unsafe { dispatch(p, cnt, burst_cb, (&mut st as *mut Burst<'_, '_>).cast()) };
    (st.spare, r)
}
