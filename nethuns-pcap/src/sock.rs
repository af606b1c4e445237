//! [`Sock`]: a nethuns socket over a libpcap handle (live interface or savefile).

use std::cell::{Cell, RefCell};

use nethuns_core::batch::BatchSink;
use nethuns_core::metadata::TsPrecision;
use nethuns_core::pool::PoolContext;
use nethuns_core::{Capabilities, Error, Payload, Result, Socket, Stats, Token};
use pcap::{Active, Capture, Direction, Linktype, Offline, Precision};

use crate::context::Fresh;
use crate::flags::{PcapFlags, PcapOptions};
use crate::format::{dlt_to_linktype, SavefileFormat, MAX_SNAPLEN};
use crate::rx::One;
use crate::{sys, Meta};

/// The prefix of a savefile portspec: `file:PATH` replays a `.pcap` file.
pub const FILE_PREFIX: &str = "file:";

enum Handle {
    /// A live capture with its `pcap_get_selectable_fd` descriptor.
    Live(Capture<Active>, std::os::fd::RawFd),
    /// A savefile, with an eventfd that stays readable: a savefile never has to wait, and a
    /// caller that polls before each receive finds it ready at once.
    File(Capture<Offline>, std::os::fd::OwnedFd),
}

/// A socket over libpcap: live capture and injection on an interface, or replay of a savefile
/// (portspec `file:PATH`).
///
/// Received packets are copied from libpcap's ring into a buffer of the socket's pool (the
/// [`PoolContext`]), so a payload or token may be held as long as needed; `buffer_count`
/// bounds how many are held at once. libpcap has no batch transmit on Linux: `send` injects
/// each frame at once (`pcap_sendpacket`, as a raw libpcap program would), so there is never
/// anything pending and `flush` only marks where [`Socket::try_flush`] starts counting
/// errors.
pub struct Sock {
    handle: RefCell<Handle>,
    ctx: PoolContext,
    /// Where `send_with` builds a frame (`buffer_size` bytes, allocated once).
    scratch: RefCell<Box<[u8]>>,
    portspec: String,
    eof: Cell<bool>,
    tx_errors: Cell<u64>,
    /// The first injection error since the last `flush`.
    last_tx_error: RefCell<Option<pcap::Error>>,
    /// `tx_errors` at the last `flush`.
    errors_at_flush: Cell<u64>,
    /// Largest untagged frame `send` accepts: the interface MTU + 14 (live), 0 (savefile,
    /// `any`: no sending).
    max_frame: usize,
    /// The scratch buffer's size (`buffer_size`): the largest frame `send` accepts.
    tx_slot: usize,
    received: Cell<u64>,
    sent: Cell<u64>,
    down: Cell<bool>,
    /// Packets received while the pool had no buffer, delivered first by the next receive.
    backlog: RefCell<crate::rx::Backlog>,
    /// Whether `backlog` holds any (one load on the fast path instead of a borrow).
    backlogged: Cell<bool>,
    /// libpcap's `DLT_` value of the source.
    link_type: Linktype,
    /// Link type, precision and snaplen of the source, as a savefile would record them.
    format: SavefileFormat,
}

/// The `pcap` crate's name for a precision.
fn pcap_precision(p: TsPrecision) -> Precision {
    match p {
        TsPrecision::Micro => Precision::Micro,
        TsPrecision::Nano => Precision::Nano,
    }
}

impl Sock {
    fn pcap_err(&self, what: &str, e: pcap::Error) -> Error {
        Error::engine("pcap", format!("{what} on {}", self.portspec), e)
    }

    /// The portspec this socket was created with.
    pub fn portspec(&self) -> &str {
        &self.portspec
    }

    /// Whether a savefile socket has read its last packet (always false for live sockets).
    pub fn at_eof(&self) -> bool {
        self.eof.get()
    }

    /// Restricts live capture to one direction (libpcap's `pcap_setdirection`). The default
    /// is libpcap's: both directions. A forwarder wants [`Direction::In`], or it sees what it
    /// sends.
    pub fn set_direction(&self, dir: Direction) -> Result<()> {
        match &mut *self.handle.borrow_mut() {
            Handle::Live(c, _) => c.direction(dir).map_err(|e| {
                Error::engine("pcap", format!("setdirection on {}", self.portspec), e)
            }),
            Handle::File(..) => Err(Error::Unsupported(format!(
                "{}: a savefile has no direction",
                self.portspec
            ))),
        }
    }

    /// libpcap's own counters (`pcap_stats`): received, dropped by the kernel, dropped by
    /// the interface. [`Socket::stats`] gives the counters every backend has.
    pub fn native_stats(&self) -> Result<pcap::Stat> {
        match &mut *self.handle.borrow_mut() {
            Handle::Live(c, _) => c
                .stats()
                .map_err(|e| Error::engine("pcap", format!("stats on {}", self.portspec), e)),
            Handle::File(..) => Err(Error::Unsupported(format!(
                "{}: a savefile has no statistics",
                self.portspec
            ))),
        }
    }

    /// The link type of the source as libpcap reports it (`pcap_datalink`: a `DLT_` value;
    /// `Linktype::ETHERNET` on an Ethernet or veth interface, `LINUX_SLL` on `any`, the
    /// savefile's own for `file:`).
    pub fn link_type(&self) -> Linktype {
        self.link_type
    }

    /// The resolution of the timestamps this socket delivers: a savefile's own; for a live
    /// interface the one asked in [`PcapOptions::precision`], or microseconds where libpcap
    /// could not stamp in nanoseconds.
    pub fn ts_precision(&self) -> TsPrecision {
        self.format.precision
    }

    /// Link type, timestamp precision and snaplen of the source, for a
    /// [`Dumper`](crate::Dumper) that writes back what this socket reads.
    pub fn savefile_format(&self) -> SavefileFormat {
        self.format
    }

    /// The descriptor to `poll(2)` for readability: libpcap's `pcap_get_selectable_fd` of a
    /// live capture (readable when a packet waits or the interface went away), an eventfd
    /// that is always readable for a savefile (which never has to wait).
    ///
    /// [`Capabilities::pollable_fd`] gives the same; `Sock` is also `AsRawFd` and `AsFd`.
    pub fn selectable_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match &*self.handle.borrow() {
            Handle::Live(_, fd) => *fd,
            Handle::File(_, ready) => ready.as_raw_fd(),
        }
    }

    /// Like [`Socket::create`], with the libpcap settings of [`PcapOptions`] (kernel buffer
    /// size, timestamp precision).
    pub fn create_with_options(
        portspec: &str,
        queue: Option<usize>,
        flags: PcapFlags,
        options: PcapOptions,
    ) -> Result<Self> {
        flags.validate()?;
        options.validate()?;
        if let Some(q) = queue {
            return Err(Error::Unsupported(format!(
                "{portspec}: libpcap has no queue selection (queue {q} requested); pass None"
            )));
        }
        let mut max_frame = 0;
        let (handle, link_type, format) = if let Some(path) = portspec.strip_prefix(FILE_PREFIX) {
            if path.is_empty() {
                return Err(Error::portspec(portspec, "file: needs a path"));
            }
            // Read the file at its own precision, so that nothing is rounded and a Dumper
            // writes the same stamps back.
            let format = SavefileFormat::of_file(path);
            let precision = format.map_or(TsPrecision::Micro, |f| f.precision);
            let cap = Self::open_file(path, &flags, precision)?;
            let ready =
                sys::always_ready().map_err(|e| Error::os(format!("eventfd for {portspec}"), e))?;
            let link_type = cap.get_datalink();
            let format = format.unwrap_or(SavefileFormat {
                linktype: dlt_to_linktype(link_type.0),
                precision: sys::tstamp_precision(&cap),
                snaplen: MAX_SNAPLEN,
            });
            (Handle::File(cap, ready), link_type, format)
        } else {
            if portspec.is_empty() || portspec.len() >= libc::IFNAMSIZ || portspec.contains('\0') {
                return Err(Error::portspec(
                    portspec,
                    "expected an interface name (1 to 15 bytes) or file:PATH",
                ));
            }
            let cap = Self::open_live(portspec, &flags, &options)?;
            let fd = sys::selectable_fd(&cap).ok_or_else(|| {
                Error::Unsupported(format!(
                    "{portspec}: libpcap gives no selectable descriptor (pcap_get_selectable_fd)"
                ))
            })?;
            let link_type = cap.get_datalink();
            let format = SavefileFormat {
                linktype: dlt_to_linktype(link_type.0),
                precision: sys::tstamp_precision(&cap),
                snaplen: flags.snaplen as u32,
            };
            // libpcap's `any` pseudo-device has no MTU and cannot inject: it only captures.
            if portspec != "any" {
                let mtu = sys::if_mtu(portspec).map_err(|e| {
                    Error::os(format!("reading the MTU of {portspec} (SIOCGIFMTU)"), e)
                })?;
                max_frame = mtu as usize + nethuns_core::frame::ETH_HLEN;
            }
            (Handle::Live(cap, fd), link_type, format)
        };
        let ctx = PoolContext::try_new(flags.buffer_count, flags.rx_buffer_size(format.snaplen))?;
        let scratch = vec![0u8; flags.buffer_size].into_boxed_slice();
        Ok(Sock {
            handle: RefCell::new(handle),
            ctx,
            scratch: RefCell::new(scratch),
            portspec: portspec.to_owned(),
            eof: Cell::new(false),
            tx_errors: Cell::new(0),
            last_tx_error: RefCell::new(None),
            errors_at_flush: Cell::new(0),
            max_frame,
            tx_slot: flags.buffer_size,
            received: Cell::new(0),
            sent: Cell::new(0),
            down: Cell::new(false),
            backlog: RefCell::default(),
            backlogged: Cell::new(false),
            link_type,
            format,
        })
    }

    /// How many frames `flush` failed to inject since the socket was created.
    pub fn tx_errors(&self) -> u64 {
        self.tx_errors.get()
    }

    /// The size rule of `send` for a frame of `len` bytes whose limit is `max`: at least an
    /// Ethernet header, at most `max` and the scratch buffer (`buffer_size`); a savefile or
    /// `any` socket sends nothing.
    #[inline]
    fn check_send(&self, len: usize, max: usize) -> Result<()> {
        if self.max_frame == 0 {
            return Err(self.cannot_send());
        }
        nethuns_core::check_frame_len(len, nethuns_core::frame::ETH_HLEN, max.min(self.tx_slot))
    }

    #[cold]
    fn cannot_send(&self) -> Error {
        Error::Unsupported(format!(
            "{}: a savefile or `any` socket cannot send",
            self.portspec
        ))
    }

    /// `pcap_sendpacket` of one frame; a failure is counted and kept for `try_flush`.
    #[inline]
    fn inject(&self, frame: &[u8]) {
        let mut handle = self.handle.borrow_mut();
        let Handle::Live(cap, _) = &mut *handle else {
            return; // Unreachable: a savefile has max_frame 0, refused by check_send.
        };
        match cap.sendpacket(frame) {
            Ok(()) => self.sent.set(self.sent.get() + 1),
            Err(e) => self.tx_failed(e),
        }
    }

    #[cold]
    fn tx_failed(&self, e: pcap::Error) {
        self.tx_errors.set(self.tx_errors.get() + 1);
        let mut last = self.last_tx_error.borrow_mut();
        if last.is_none() {
            *last = Some(e);
        }
    }

    /// The receive of `recv_token` and `recv`: `wrap` makes the result of a packet.
    #[inline(always)]
    fn recv_as<'s, R>(&'s self, wrap: impl FnOnce(Fresh<'s>, Meta) -> R) -> Result<R> {
        if self.backlogged.get() {
            return self.recv_backlog().map(|(f, m)| wrap(f, m));
        }
        // A full pool is reported before a packet is consumed (an empty poll touches nothing
        // but this count).
        if self.ctx.free_buffers() == 0 {
            return Err(Error::NoMemory);
        }
        let mut handle = self.handle.borrow_mut();
        let cap = match &mut *handle {
            Handle::Live(c, _) => c,
            Handle::File(c, _) => return self.recv_file(c).map(|(f, m)| wrap(f, m)),
        };
        match crate::rx::recv_one(cap, &self.ctx, self.format.precision, &self.backlog) {
            Ok(One::Packet(f, m)) => {
                self.received.set(self.received.get() + 1);
                Ok(wrap(f, m))
            }
            Ok(One::Empty) => Err(Error::NoPacket),
            Ok(One::Backlogged) => {
                drop(handle);
                self.backlogged.set(true);
                self.recv_backlog().map(|(f, m)| wrap(f, m))
            }
            Err(e) => {
                drop(handle);
                Err(self.live_error(e))
            }
        }
    }

    /// The rarer ends of a burst: packets left in the backlog, the end of a savefile, an
    /// error.
    #[cold]
    fn end_burst(
        &self,
        r: sys::DispatchResult,
        got: usize,
        live: bool,
        sink: &BatchSink<'_, Meta>,
    ) -> Result<()> {
        self.received.set(self.received.get() + got as u64);
        // libpcap handed over more than the sink took: the rest is in the backlog.
        if matches!(r, Ok(k) if k > got) {
            self.backlogged.set(true);
        }
        match r {
            Ok(0) if !live && self.backlog.borrow().is_empty() => {
                self.eof.set(true);
                if sink.is_empty() {
                    Err(Error::Eof)
                } else {
                    Ok(())
                }
            }
            Ok(_) => Ok(()),
            Err(e) if live => Err(self.live_error(e)),
            Err(e) => Err(self.pcap_err("receive", e)),
        }
    }

    /// Packets of the backlog into `sink`; `Some` if the burst ends there.
    #[cold]
    fn fill_from_backlog(&self, sink: &mut BatchSink<'_, Meta>) -> Option<Result<()>> {
        while self.backlogged.get() && sink.remaining() > 0 {
            match self.recv_backlog() {
                Ok((f, m)) => {
                    if let Err((t, _)) = sink.push(f.into_token(), m) {
                        drop(nethuns_core::Context::packet(&self.ctx, t));
                    }
                }
                Err(e) if sink.is_empty() => return Some(Err(e)),
                Err(_) => return Some(Ok(())),
            }
        }
        None
    }

    /// A packet kept in the backlog (see [`crate::rx::Backlog`]), copied into a pool buffer.
    #[cold]
    fn recv_backlog(&self) -> Result<(Fresh<'_>, Meta)> {
        let mut backlog = self.backlog.borrow_mut();
        let Some((data, h)) = backlog.pop() else {
            self.backlogged.set(false);
            return Err(Error::NoPacket);
        };
        let Some(fresh) = Fresh::copy_in(&self.ctx, &data) else {
            backlog.push_front((data, h));
            return Err(Error::NoMemory);
        };
        self.backlogged.set(!backlog.is_empty());
        let n = fresh.len();
        let meta = crate::rx::meta(self.format.precision, &h, n as u32, &data[..n]);
        self.received.set(self.received.get() + 1);
        Ok((fresh, meta))
    }

    /// `recv_token` of a savefile: the `pcap` crate's `next_packet` (end of file is its own
    /// return code there), copied into a pool buffer.
    fn recv_file(&self, cap: &mut Capture<Offline>) -> Result<(Fresh<'_>, Meta)> {
        match cap.next_packet() {
            Ok(pkt) => {
                let copied = crate::rx::copy_packet(
                    &self.ctx,
                    self.format.precision,
                    &self.backlog,
                    pkt.header,
                    pkt.data,
                );
                match copied {
                    Some(r) => {
                        self.received.set(self.received.get() + 1);
                        Ok(r)
                    }
                    // Another holder of the context took the last buffer since the count: the
                    // packet waits in the backlog.
                    None => {
                        self.backlogged.set(true);
                        Err(Error::NoMemory)
                    }
                }
            }
            Err(e) => match e {
                pcap::Error::NoMorePackets => {
                    self.eof.set(true);
                    Err(Error::Eof)
                }
                e => Err(self.pcap_err("receive", e)),
            },
        }
    }

    /// One dispatch of up to `cnt` packets of `cap` into `sink`.
    #[inline]
    fn burst<T: pcap::Activated + ?Sized>(
        &self,
        cap: &mut Capture<T>,
        cnt: usize,
        sink: &mut BatchSink<'_, Meta>,
    ) -> sys::DispatchResult {
        crate::rx::recv_burst(
            cap,
            &self.ctx,
            cnt,
            sink,
            self.format.precision,
            &self.backlog,
        )
    }

    /// A receive error of a live handle: the interface gone or down is
    /// [`Error::InterfaceDown`], anything else libpcap's error with context.
    #[cold]
    fn live_error(&self, e: pcap::Error) -> Error {
        if !sys::if_exists(&self.portspec) || self.down.get() {
            return Error::InterfaceDown(self.portspec.clone());
        }
        let msg = e.to_string();
        if msg.contains("went down")
            || msg.contains("disappeared")
            || msg.contains("No such device")
        {
            return Error::InterfaceDown(self.portspec.clone());
        }
        self.pcap_err("receive", e)
    }

    fn open_live(dev: &str, flags: &PcapFlags, options: &PcapOptions) -> Result<Capture<Active>> {
        let ctx = |what: &str| format!("{what} {dev}");
        let mut cap = Capture::from_device(dev)
            .map_err(|e| Error::engine("pcap", ctx("looking up device"), e))?
            .promisc(flags.promiscuous)
            .snaplen(flags.snaplen)
            .timeout(flags.timeout_ms)
            .immediate_mode(flags.immediate)
            // libpcap keeps microseconds where it cannot stamp in nanoseconds; the precision
            // it settled on is read back after activation.
            .precision(pcap_precision(options.precision));
        let kernel_buffer = options
            .kernel_buffer_bytes
            .unwrap_or(crate::flags::DEFAULT_KERNEL_BUFFER_BYTES);
        cap = cap.buffer_size(kernel_buffer as i32);
        let cap = cap
            .open()
            .map_err(|e| Error::engine("pcap", ctx("opening"), e))?;
        let mut cap = cap
            .setnonblock()
            .map_err(|e| Error::engine("pcap", ctx("setting non-blocking mode on"), e))?;
        if let Some(f) = &flags.filter {
            cap.filter(f, true).map_err(|e| {
                Error::engine("pcap", format!("compiling filter {f:?} on {dev}"), e)
            })?;
        }
        Ok(cap)
    }

    fn open_file(
        path: &str,
        flags: &PcapFlags,
        precision: TsPrecision,
    ) -> Result<Capture<Offline>> {
        let mut cap = Capture::from_file_with_precision(path, pcap_precision(precision))
            .map_err(|e| Error::engine("pcap", format!("opening savefile {path}"), e))?;
        if let Some(f) = &flags.filter {
            cap.filter(f, true).map_err(|e| {
                Error::engine("pcap", format!("compiling filter {f:?} for {path}"), e)
            })?;
        }
        Ok(cap)
    }
}

impl Socket for Sock {
    type Context = PoolContext;
    type Metadata = Meta;
    type Flags = PcapFlags;

    fn create(portspec: &str, queue: Option<usize>, flags: PcapFlags) -> Result<Self> {
        Self::create_with_options(portspec, queue, flags, PcapOptions::default())
    }

    #[inline]
    fn recv_token(&self) -> Result<(Token, Meta)> {
        self.recv_as(|f, m| (f.into_token(), m))
    }

    /// `recv_token` with the payload made in place (the result is written once, not moved
    /// from one `Result` into another).
    #[inline]
    fn recv(&self) -> Result<(Payload<'_, PoolContext>, Meta)> {
        self.recv_as(|f, m| (f.into_payload(), m))
    }

    /// One `pcap_dispatch` for as many packets as the burst has room and the pool has
    /// buffers (a savefile: up to its end).
    fn fill_batch(&self, sink: &mut BatchSink<'_, Meta>) -> Result<()> {
        if self.backlogged.get() {
            if let Some(r) = self.fill_from_backlog(sink) {
                return r;
            }
        }
        let room = sink.remaining();
        if room == 0 {
            return Ok(());
        }
        let avail = self.ctx.free_buffers();
        if avail == 0 {
            return if sink.is_empty() {
                Err(Error::NoMemory)
            } else {
                Ok(())
            };
        }
        let cnt = room.min(avail);
        let before = sink.len();
        let mut handle = self.handle.borrow_mut();
        let (r, live) = match &mut *handle {
            Handle::Live(c, _) => (self.burst(c, cnt, sink), true),
            Handle::File(c, _) => (self.burst(c, cnt, sink), false),
        };
        let got = sink.len() - before;
        // The common ends, nothing to look into: a live burst that came whole (or empty).
        if live && matches!(r, Ok(k) if k == got) {
            if got > 0 {
                self.received.set(self.received.get() + got as u64);
            }
            return Ok(());
        }
        drop(handle);
        self.end_burst(r, got, live, sink)
    }

    #[inline]
    fn send(&self, packet: &[u8]) -> Result<()> {
        self.check_send(
            packet.len(),
            nethuns_core::frame::send_limit(packet, self.max_frame),
        )?;
        self.inject(packet);
        Ok(())
    }

    /// Builds the frame in the socket's scratch buffer (no allocation, no zeroing), then
    /// injects it as `send` does.
    #[inline]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        // The tagged limit first (the tag is only known once the frame is written).
        self.check_send(len, self.max_frame + nethuns_core::frame::VLAN_HLEN)?;
        let mut scratch = self.scratch.borrow_mut();
        let frame = &mut scratch[..len];
        fill(frame);
        self.check_send(len, nethuns_core::frame::send_limit(frame, self.max_frame))?;
        self.inject(frame);
        Ok(())
    }

    /// One `pcap_sendpacket` per frame under one borrow of the handle; stops at the first
    /// frame the size rule refuses (an error only if it is the first).
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        let mut n = 0;
        {
            let mut handle = self.handle.borrow_mut();
            let cap = match &mut *handle {
                Handle::Live(cap, _) if self.max_frame > 0 => cap,
                _ => return Err(self.cannot_send()),
            };
            for p in packets {
                let limit = nethuns_core::frame::send_limit(p, self.max_frame);
                if let Err(e) = self.check_send(p.len(), limit) {
                    if n == 0 {
                        return Err(e);
                    }
                    break;
                }
                match cap.sendpacket(*p) {
                    Ok(()) => self.sent.set(self.sent.get() + 1),
                    Err(e) => self.tx_failed(e),
                }
                n += 1;
            }
        }
        self.flush();
        Ok(n)
    }

    /// Nothing is pending (`send` injects at once); starts a new count of errors for
    /// [`Socket::try_flush`].
    #[inline]
    fn flush(&self) {
        self.errors_at_flush.set(self.tx_errors.get());
    }

    /// Reports the first injection error since the last `flush`: the interface gone or down
    /// as [`Error::InterfaceDown`], anything else as libpcap's error.
    fn try_flush(&self) -> Result<()> {
        let before = self.errors_at_flush.get();
        self.flush();
        let first = self.last_tx_error.borrow_mut().take();
        if self.tx_errors.get() == before {
            return Ok(());
        }
        match first {
            Some(_) if !sys::if_exists(&self.portspec) => {
                Err(Error::InterfaceDown(self.portspec.clone()))
            }
            Some(e) => Err(self.pcap_err("inject", e)),
            // Counted but the error itself already taken (an earlier `try_flush` saw it).
            None => Err(Error::Engine {
                engine: "pcap",
                context: format!(
                    "injecting on {}: {} frame(s) refused since the last try_flush",
                    self.portspec,
                    self.tx_errors.get() - before
                ),
                source: "libpcap refused the frames".into(),
            }),
        }
    }

    /// `received` and `sent` as nethuns counted them; `dropped` is libpcap's `ps_drop +
    /// ps_ifdrop` (kernel and interface drops, live capture only; `None` for a savefile);
    /// libpcap does not count what its filter rejected (`filtered` is `None`).
    fn stats(&self) -> Result<Stats> {
        let dropped = match &mut *self.handle.borrow_mut() {
            Handle::Live(c, _) => {
                let s = c
                    .stats()
                    .map_err(|e| Error::engine("pcap", format!("stats on {}", self.portspec), e))?;
                Some(u64::from(s.dropped) + u64::from(s.if_dropped))
            }
            Handle::File(..) => None,
        };
        Ok(Stats {
            received: self.received.get(),
            dropped,
            filtered: None,
            sent: self.sent.get(),
            send_errors: self.tx_errors.get(),
        })
    }

    fn capabilities(&self) -> Capabilities {
        let pollable_fd = Some(self.selectable_fd());
        Capabilities {
            max_frame: self.max_frame,
            min_frame: nethuns_core::frame::ETH_HLEN,
            timestamps: true,
            zero_copy: false,
            pollable_fd,
            filters: true,
        }
    }

    #[inline]
    fn context(&self) -> &PoolContext {
        &self.ctx
    }
}

/// [`Sock::selectable_fd`]: libpcap's selectable descriptor of a live capture, an always
/// readable eventfd for a savefile.
impl std::os::fd::AsRawFd for Sock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.selectable_fd()
    }
}

/// [`Sock::selectable_fd`], borrowed for as long as the socket.
impl std::os::fd::AsFd for Sock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to the capture handle or the eventfd, both owned by
        // `self` and never replaced or closed before `self` is dropped; it is not -1
        // (`create` refused a capture without one).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.selectable_fd()) }
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        self.flush();
    }
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("portspec", &self.portspec)
            .field("pool", self.ctx.pool())
            .finish()
    }
}
