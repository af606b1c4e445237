//! [`Sock`]: the AF_XDP socket, its creation (UMEM registration, rings, bind, steering
//! program) and its [`Socket`] implementation (the receive and transmit halves are in
//! `rx.rs` and `tx.rs`).

use std::cell::{Cell, RefCell};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nethuns_core::batch::BatchSink;
use nethuns_core::frame::ETH_HLEN;
use nethuns_core::{Capabilities, Context, Error, Result, Socket, Stats, Token};

use crate::abi::XdpDesc;
use crate::attach::{self, XdpShare};
use crate::context::Umem;
use crate::flags::{mode_name, AfXdpFlags, Layout, XDP_ZEROCOPY};
use crate::ring::{Consumer, Producer};
use crate::stack::FrameStack;
use crate::tx::Kick;
use crate::{netdev, sys, xdpstate, AfXdpOptions, Meta};

pub use crate::abi::XdpStatistics;

/// An AF_XDP socket bound to one queue of one interface, with its own UMEM.
///
/// Create it with [`Socket::create`](nethuns_core::Socket::create): `portspec` is the interface
/// name, `queue` the queue to bind (`None` = queue 0). `Sock` is `Send` but not `Sync`: one
/// thread drives its rings; payloads and tokens it hands out may be dropped anywhere.
pub struct Sock {
    pub(crate) umem: Umem,
    pub(crate) fill: Producer<u64>,
    pub(crate) comp: Consumer<u64>,
    pub(crate) rx: Consumer<XdpDesc>,
    pub(crate) tx: Producer<XdpDesc>,
    /// TX frames not in use (UMEM addresses of frame starts).
    pub(crate) tx_free: FrameStack,
    /// Released RX frames that did not fit in the fill ring (never, with the sizes `Layout`
    /// gives; kept so that no frame can be lost).
    pub(crate) rx_spare: RefCell<Vec<u64>>,
    /// Descriptors pushed on the TX ring but not yet published.
    pub(crate) tx_pending: Cell<u32>,
    /// RX frames handed out as payloads/tokens since creation.
    pub(crate) handed_out: Cell<u64>,
    /// The last flush found the device down, gone, or taking no frame.
    pub(crate) link_down: Cell<bool>,
    /// Released RX frames moved back to the fill ring since creation.
    pub(crate) recycled: Cell<u64>,
    /// Frames published on the TX ring since creation ([`Stats::sent`](nethuns_core::Stats)).
    pub(crate) sent: Cell<u64>,
    /// Sends refused since creation: size rule, interface down or gone (not `NoMemory`).
    pub(crate) refused: Cell<u64>,
    /// Idle-path link check: the coarse-clock time (ms) at which the next check is due.
    pub(crate) next_check_ms: Cell<u64>,
    /// Empty polls so far (the link clock is read every [`crate::rx::CLOCK_EVERY`]-th).
    pub(crate) idle_polls: Cell<u32>,
    /// The last link check found the interface down (admin down or no carrier).
    pub(crate) down: Cell<bool>,
    /// The interface was deleted: the kernel unbound the socket, for good.
    pub(crate) gone: Cell<bool>,
    pub(crate) layout: Layout,
    /// The interface's MTU when the socket was created.
    pub(crate) mtu: u32,
    /// Largest untagged frame `send` takes: MTU + 14 (at most a frame without multi-buffer
    /// frames).
    pub(crate) max_tx_len: usize,
    /// Largest frame of `send`'s fast path: untagged-size and in one UMEM frame.
    pub(crate) fast_tx_len: usize,
    /// Multi-buffer frames (`XDP_USE_SG`): a frame may span several UMEM frames.
    pub(crate) multi_buffer: bool,
    /// Free jumbo buffers (indices after the UMEM's frames), for received multi-buffer frames.
    pub(crate) jumbo_free: RefCell<Vec<u32>>,
    pub(crate) queue: u32,
    pub(crate) ifname: String,
    pub(crate) zero_copy: bool,
    pub(crate) fd: OwnedFd,
    /// An ioctl socket in the interface's namespace (link state checks from any thread).
    pub(crate) ctl: OwnedFd,
    /// Link events of the interface's namespace (netlink), drained by the link check.
    pub(crate) link_events: OwnedFd,
    /// epoll set of the XSK socket and `link_events`: `Capabilities::pollable_fd`.
    pub(crate) wait_set: OwnedFd,
    /// The steering program writes XDP RX metadata in front of each frame.
    pub(crate) rx_meta: bool,
    /// `CLOCK_REALTIME − CLOCK_TAI` (the program's software stamps are TAI).
    pub(crate) tai_to_epoch_ns: i64,
    /// Declared last: the steering program goes after the socket is closed.
    pub(crate) _share: XdpShare,
}

impl std::os::fd::AsRawFd for Sock {
    /// The XSK socket, e.g. to `poll(2)` it for `POLLIN` (frames on the RX ring) instead of
    /// spinning on `recv`. It does not wake when the interface is deleted (the kernel unbinds
    /// the socket and its poll reports nothing); [`Sock::wait_fd`] does.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl std::os::fd::AsFd for Sock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("interface", &self.ifname)
            .field("queue", &self.queue)
            .field("mode", &mode_name(self.layout.xdp_mode))
            .field("zero_copy", &self.zero_copy)
            .field("umem", &self.umem)
            .finish()
    }
}

impl Sock {
    /// Opens queue `queue` (`None` = 0) of interface `portspec` with `flags` and the
    /// steering of `options` ([`AfXdpOptions`]: which frames the socket gets, the rest going to
    /// the kernel). [`Socket::create`](nethuns_core::Socket::create) is this with
    /// [`AfXdpOptions::process_default`].
    pub fn create_with_options(
        portspec: &str,
        queue: Option<usize>,
        flags: AfXdpFlags,
        options: AfXdpOptions,
    ) -> Result<Self> {
        Self::open(portspec, queue, flags, options)
    }

    pub(crate) fn open(
        portspec: &str,
        queue: Option<usize>,
        flags: AfXdpFlags,
        options: AfXdpOptions,
    ) -> Result<Self> {
        // Everything that needs no kernel first.
        let mut layout = flags.layout()?;
        options.validate()?;
        let name = netdev::ifname(portspec)?;
        let queue = match queue {
            None => 0,
            Some(q) => u32::try_from(q).map_err(|_| {
                Error::Unsupported(format!("AF_XDP on {portspec}: queue {q} is out of range"))
            })?,
        };
        let ifindex = netdev::ifindex(&name, queue)?;
        let ctx = |what: &str| format!("AF_XDP on {portspec} queue {queue}: {what}");
        let mtu = netdev::mtu(&name).map_err(|e| Error::os(ctx("reading the MTU"), e))?;
        flags.check_mtu(portspec, mtu)?;
        // Frames larger than a UMEM frame: multi-buffer AF_XDP, and jumbo buffers to receive
        // them whole.
        let segments = flags.segments_for(mtu);
        let multi_buffer = segments > 1;
        let (jumbo_count, jumbo_size) = if multi_buffer {
            layout.bind_flags |= crate::flags::XDP_USE_SG;
            let size = (mtu as usize + 18).next_power_of_two() as u32;
            ((layout.rx_frames / segments).max(1), size)
        } else {
            (0, 0)
        };
        if let Some(mode) = attach::attached_mode(netdev::netns_id(), ifindex) {
            if mode != layout.xdp_mode {
                return Err(Error::flag(
                    "xdp_flags",
                    format!(
                        "{portspec} already has this process's XDP program in {}; a socket asking for {} cannot share it",
                        mode_name(mode),
                        mode_name(layout.xdp_mode)
                    ),
                ));
            }
        }

        let ctl =
            netdev::ctl_socket().map_err(|e| Error::os(ctx("creating an ioctl socket"), e))?;
        let link_events = netdev::link_events_socket()
            .map_err(|e| Error::os(ctx("creating a netlink socket for link events"), e))?;
        let mut umem = Umem::with_jumbo(
            layout.num_frames,
            layout.frame_size,
            jumbo_count,
            jumbo_size,
        )?;
        // The socket's handle: payloads of `recv` release through it without atomics.
        umem.make_local(layout.rx_frames);
        let fd = sys::xsk_socket().map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    "creating the socket (needs CAP_NET_RAW, and CAP_NET_ADMIN + CAP_BPF to attach the program: run as root)"
                }
                Some(libc::EAFNOSUPPORT) => "creating the socket (kernel without AF_XDP)",
                _ => "creating the socket",
            };
            Error::os(ctx(hint), e)
        })?;

        let (area, len) = umem.area();
        let reg = libc::xdp_umem_reg {
            addr: area as u64,
            len: len as u64,
            chunk_size: layout.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::register_umem(&fd, &reg).map_err(|e| {
            Error::os(
                ctx(&format!(
                    "registering a UMEM of {} bytes (locked memory limit? see `ulimit -l`)",
                    len
                )),
                e,
            )
        })?;
        for (opt, size, name) in [
            (libc::XDP_UMEM_FILL_RING, layout.fill_size, "fill"),
            (
                libc::XDP_UMEM_COMPLETION_RING,
                layout.comp_size,
                "completion",
            ),
            (libc::XDP_RX_RING, layout.rx_size, "RX"),
            (libc::XDP_TX_RING, layout.tx_size, "TX"),
        ] {
            sys::set_ring_size(&fd, opt, size)
                .map_err(|e| Error::os(ctx(&format!("sizing the {name} ring to {size}")), e))?;
        }
        let off =
            sys::mmap_offsets(&fd).map_err(|e| Error::os(ctx("reading the ring offsets"), e))?;
        let map_err = |name: &str| {
            let c = ctx(&format!("mapping the {name} ring"));
            move |e| Error::os(c, e)
        };
        let fill = Producer::<u64>::map(
            &fd,
            &off.fr,
            layout.fill_size,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )
        .map_err(map_err("fill"))?;
        let comp = Consumer::<u64>::map(
            &fd,
            &off.cr,
            layout.comp_size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(map_err("completion"))?;
        let rx =
            Consumer::<XdpDesc>::map(&fd, &off.rx, layout.rx_size, libc::XDP_PGOFF_RX_RING as u64)
                .map_err(map_err("RX"))?;
        let tx =
            Producer::<XdpDesc>::map(&fd, &off.tx, layout.tx_size, libc::XDP_PGOFF_TX_RING as u64)
                .map_err(map_err("TX"))?;

        // Every receive frame goes to the fill ring (it holds them all).
        debug_assert!(fill.free_slots(layout.rx_frames) >= layout.rx_frames);
        for f in 0..layout.rx_frames {
            fill.push(umem.addr_of(f));
        }
        fill.submit();

        bind(&fd, &name, ifindex, queue, &layout, portspec)?;
        let opts =
            sys::xdp_options(&fd).map_err(|e| Error::os(ctx("reading the socket options"), e))?;
        let zero_copy = opts & libc::XDP_OPTIONS_ZEROCOPY != 0;

        let wait_set = netdev::wait_set(&[&fd, &link_events])
            .map_err(|e| Error::os(ctx("creating the epoll set of the pollable fd"), e))?;

        let share = attach::steer(
            portspec,
            ifindex,
            netdev::netns_id(),
            queue,
            layout.xdp_mode,
            multi_buffer,
            &options.steer,
            fd.as_raw_fd(),
        )?;

        let tx_free = FrameStack::with_capacity(layout.num_frames - layout.rx_frames);
        for f in (layout.rx_frames..layout.num_frames).rev() {
            tx_free.push(umem.addr_of(f));
        }
        Ok(Sock {
            fill,
            comp,
            rx,
            tx,
            tx_free,
            rx_spare: RefCell::new(Vec::with_capacity(layout.rx_frames as usize)),
            tx_pending: Cell::new(0),
            handed_out: Cell::new(0),
            link_down: Cell::new(false),
            recycled: Cell::new(0),
            sent: Cell::new(0),
            refused: Cell::new(0),
            next_check_ms: Cell::new(0),
            idle_polls: Cell::new(0),
            down: Cell::new(false),
            gone: Cell::new(false),
            mtu,
            max_tx_len: if multi_buffer {
                mtu as usize + ETH_HLEN
            } else {
                (mtu as usize + ETH_HLEN).min(layout.frame_size as usize)
            },
            fast_tx_len: (mtu as usize + ETH_HLEN).min(layout.frame_size as usize),
            multi_buffer,
            jumbo_free: RefCell::new(
                (0..jumbo_count)
                    .rev()
                    .map(|j| layout.num_frames + j)
                    .collect(),
            ),
            layout,
            queue,
            ifname: portspec.to_owned(),
            zero_copy,
            umem,
            fd,
            ctl,
            link_events,
            wait_set,
            rx_meta: share.rx_meta.is_ok(),
            tai_to_epoch_ns: crate::rxmeta::tai_to_epoch_ns(),
            _share: share,
        })
    }

    /// Whether the interface is up with a carrier (`IFF_UP` and `IFF_RUNNING`), asked of the
    /// kernel (a syscall): used when transmission stalls, not per packet.
    pub fn link_is_up(&self) -> bool {
        netdev::is_running(&self.ctl, &self.ifname)
    }

    /// The interface this socket is bound to.
    pub fn interface(&self) -> &str {
        &self.ifname
    }

    /// The queue this socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the kernel bound the socket in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The XDP mode bits the steering program was attached with (`XDP_FLAGS_SKB_MODE`,
    /// `XDP_FLAGS_DRV_MODE`, or 0 for the kernel's choice).
    pub fn xdp_mode(&self) -> u32 {
        self.layout.xdp_mode
    }

    /// The UMEM (this socket's [`Context`](nethuns_core::Context)).
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// A descriptor to `poll(2)` for `POLLIN` before `recv`, as
    /// [`Capabilities::pollable_fd`](nethuns_core::Capabilities) gives it: an epoll set of
    /// the XSK socket (frames on the RX ring) and a netlink socket of link events (the
    /// interface went down, up, or away), so that a wait ends when the interface is deleted.
    /// After an unrelated link event in the namespace it may stay readable for up to 10 ms
    /// (until `recv`'s next link check drains it).
    pub fn wait_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.wait_set.as_fd()
    }

    /// The interface's MTU when the socket was created.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Whether frames carry XDP RX metadata (the driver's RX timestamp and hash in
    /// [`Meta`](crate::Meta)'s `rx_timestamp` / `rx_hash`, each `None` where the driver had
    /// none for the frame): `Ok` in native mode on a kernel with the metadata kfuncs (6.3+),
    /// otherwise `Err` with the reason (SKB mode, kernel without the kfuncs or without BTF).
    pub fn rx_metadata(&self) -> std::result::Result<(), String> {
        self._share.rx_meta.clone()
    }

    /// The kernel's own counters for this socket (`XDP_STATISTICS`); the counters every
    /// backend reports the same way are [`Socket::stats`](nethuns_core::Socket::stats).
    pub fn native_stats(&self) -> Result<XdpStatistics> {
        sys::xdp_statistics(&self.fd).map_err(|e| {
            Error::os(
                format!(
                    "AF_XDP on {} queue {}: reading statistics",
                    self.ifname, self.queue
                ),
                e,
            )
        })
    }
}

/// How long `create` waits for a queue that a closed socket is still releasing.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Who holds a queue that bind found busy (`EBUSY`): a socket of this process, a live process
/// using the interface's XDP program, or (`None`) nobody that lives: a socket closed before,
/// whose queue the kernel frees asynchronously (after an RCU grace period, from a work queue),
/// which under CPU load can take well over 100 ms.
fn busy_holder(name: &CString, ifindex: u32, queue: u32) -> Option<String> {
    let ifname = name.to_string_lossy();
    if attach::queue_in_use(netdev::netns_id(), ifindex, queue) {
        return Some(format!(
            "another AF_XDP socket of this process is bound to {ifname} queue {queue}"
        ));
    }
    xdpstate::live_owner(&ifname, ifindex)
}

fn bind(
    fd: &OwnedFd,
    name: &CString,
    ifindex: u32,
    queue: u32,
    layout: &Layout,
    portspec: &str,
) -> Result<()> {
    let sa = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: layout.bind_flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // EBUSY: the queue has a buffer pool. If a live owner holds it, fail at once, naming it;
    // else a closed socket's pool is being freed by the kernel: wait for that, with backoff,
    // for up to BIND_BUSY_WAIT.
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    let mut holder = None;
    let mut checked = false;
    let e = loop {
        let Err(e) = sys::bind_xsk(fd, &sa) else {
            return Ok(());
        };
        if e.raw_os_error() != Some(libc::EBUSY) {
            break e;
        }
        if !checked {
            checked = true;
            holder = busy_holder(name, ifindex, queue);
            if holder.is_some() {
                break e;
            }
        }
        if start.elapsed() >= BIND_BUSY_WAIT {
            holder = busy_holder(name, ifindex, queue);
            break e;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    };
    let queues = netdev::rx_queues(name);
    let hint = match (e.raw_os_error(), queues) {
        (Some(libc::EINVAL), Some(n)) if queue >= n => {
            format!(
                ": the device has {n} queue{}",
                if n == 1 { "" } else { "s" }
            )
        }
        (Some(libc::EOPNOTSUPP), _) | (Some(libc::EINVAL), _)
            if layout.bind_flags & XDP_ZEROCOPY != 0 =>
        {
            zero_copy_hint(portspec)
        }
        (Some(libc::EBUSY), _) => match holder {
            Some(h) => format!(": the queue is taken: {h}"),
            None => format!(
                ": the queue was still held {} ms later, and no socket of this process nor \
                 any other process's XDP program uses it: a socket closed before is still \
                 being released by the kernel",
                start.elapsed().as_millis()
            ),
        },
        (Some(libc::EINVAL | libc::EOPNOTSUPP), _)
            if layout.bind_flags & crate::flags::XDP_USE_SG != 0 =>
        {
            format!(
                ": the interface's MTU needs multi-buffer frames (XDP_USE_SG, Linux 6.6+; kernel \
                 {} here) with frame_size {}; lower the MTU to {} for single-frame sockets",
                crate::features::kernel_release(),
                layout.frame_size,
                layout.frame_size - crate::flags::XDP_PACKET_HEADROOM - 18
            )
        }
        (Some(libc::ENETDOWN), _) => ": the interface is down".to_owned(),
        _ => String::new(),
    };
    let copy = if layout.bind_flags & XDP_ZEROCOPY != 0 {
        "zero-copy "
    } else {
        ""
    };
    Err(Error::os(
        format!("AF_XDP {copy}bind on {portspec} queue {queue}{hint}"),
        e,
    ))
}

/// Why an `XDP_ZEROCOPY` bind on `iface` failed, from what the kernel says of the device: its
/// driver (`ETHTOOL_GDRVINFO`) and whether that driver advertises zero-copy
/// (`NETDEV_XDP_ACT_XSK_ZEROCOPY`).
fn zero_copy_hint(iface: &str) -> String {
    let driver = crate::features::driver_name(iface)
        .map_or_else(|| "its driver".to_owned(), |d| format!("driver {d}"));
    let kernel = crate::features::kernel_release();
    match crate::features::xdp_features(iface) {
        Ok(f) if !f.zero_copy() => format!(
            ": {iface}'s {driver} on Linux {kernel} has no AF_XDP zero-copy (the kernel \
             reports no NETDEV_XDP_ACT_XSK_ZEROCOPY); use XDP_COPY"
        ),
        Ok(_) => format!(
            ": {iface}'s {driver} on Linux {kernel} advertises AF_XDP zero-copy, yet refused \
             it (native mode attached? frame size or queue supported?)"
        ),
        Err(_) => format!(
            ": {iface}'s {driver} on Linux {kernel} may have no AF_XDP zero-copy (the kernel \
             did not say); use XDP_COPY"
        ),
    }
}

impl Socket for Sock {
    type Context = Umem;
    type Metadata = Meta;
    type Flags = AfXdpFlags;

    /// [`Socket::recv_token`] paired with the socket's context, inlined into the caller.
    #[inline(always)]
    fn recv(&self) -> Result<(nethuns_core::Payload<'_, Umem>, Meta)> {
        if self.rx.window_done() && !self.next_window() {
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
        if self.rx.window_done() && !self.next_window() {
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
        if self.rx.window_done() && !self.next_window() {
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
        let n = self.rx.window_left().min(sink.remaining() as u32);
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
                if self.tx.free_slots(1) != 0 {
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
            want.min(self.tx_free.len()).min(self.tx.free_slots(want))
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
                if self.tx.free_slots(1) != 0 {
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
