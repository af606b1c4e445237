//! [`Sock`]: an AF_PACKET socket with a TPACKET_v3 RX ring and a TX ring, and its setup.

use std::cell::Cell;
use std::os::fd::{AsFd, OwnedFd};

use nethuns_core::batch::BatchSink;
use nethuns_core::frame::ETH_HLEN;
use nethuns_core::metadata::AfPacketMeta;
use nethuns_core::{Capabilities, Error, Payload, Result, Socket, Stats, Token};

use nethuns_sys_linux::SharedMap;

use crate::context::{AfPacketContext, Shared};
use crate::flags::{AfPacketFlags, Fanout};
use crate::geometry::Geometry;
use crate::link::LinkWatch;
use crate::rx::RxCursor;
use crate::sys;
use crate::tx::TxRing;

/// An AF_PACKET socket bound to one interface: receives from a TPACKET_v3 ring without copying,
/// sends through a TX ring.
///
/// `recv` is non-blocking and makes no syscall while packets are in the ring. Payloads point
/// into the ring; a block of the ring goes back to the kernel when every payload and token from
/// it is released, so hold packets briefly (or copy them) to keep the ring flowing.
pub struct Sock {
    ctx: AfPacketContext,
    ifname: String,
    ifindex: i32,
    queue: Option<usize>,
    fanout: Option<Fanout>,
    rx: RxCursor,
    tx: Option<TxRing>,
    link: LinkWatch,
    mtu: u32,
    /// Packets handed out by `recv`/`recv_token`.
    received: Cell<u64>,
    /// `tp_drops` summed over every `PACKET_STATISTICS` read (each read resets the kernel's).
    kernel_drops: Cell<u64>,
}

impl std::fmt::Debug for Sock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sock")
            .field("interface", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("fanout", &self.fanout)
            .field("context", &self.ctx)
            .finish()
    }
}

/// How long dropping a socket keeps submitting frames the kernel has not taken yet.
const DROP_FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

fn check_portspec(portspec: &str) -> Result<&str> {
    let name = portspec.strip_prefix("afpacket:").unwrap_or(portspec);
    if name.is_empty() {
        return Err(Error::portspec(portspec, "empty interface name"));
    }
    if name.len() >= libc::IFNAMSIZ {
        return Err(Error::portspec(
            portspec,
            format!("interface names have at most {} bytes", libc::IFNAMSIZ - 1),
        ));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(Error::portspec(
            portspec,
            "an interface name has no NUL, '/' or whitespace",
        ));
    }
    Ok(name)
}

/// `geo` with its filter compiled for the live interface if it is a tcpdump expression
/// (`validate` compiled it for a dead handle, which checked it).
#[cfg(feature = "pcap")]
fn live_filter(mut geo: Geometry, flags: &AfPacketFlags, name: &str) -> Result<Geometry> {
    if let Some(crate::Filter::Expression(expr)) = &flags.filter {
        sys::if_index(name)?; // a missing interface is named as without a filter
        let prog = crate::flags::compile_expression_for(expr, name)?;
        geo.filter = Some(crate::flags::compile_filter(&crate::Filter::Classic(prog))?);
    }
    Ok(geo)
}

/// `PACKET_TIMESTAMP` (linux/if_packet.h; not in the libc crate): which stamp the ring's frame
/// headers carry.
const PACKET_TIMESTAMP: libc::c_int = 17;

fn int_opt(fd: &OwnedFd, name: libc::c_int, value: libc::c_int, what: &str) -> Result<()> {
    sys::setsockopt(fd, libc::SOL_PACKET, name, &value, what)
}

impl Sock {
    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.ifname
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The interface MTU, read at `create`.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The fanout member index given to `create` (`None`: not set).
    pub fn queue(&self) -> Option<usize> {
        self.queue
    }

    /// Largest untagged frame `send` accepts: the interface MTU + 14 (bounded by the TX slot's
    /// room), or 0 without a TX ring. A frame whose outer EtherType is 0x8100 may be 4 bytes
    /// longer ([`Sock::max_tagged_frame`]).
    pub fn max_frame(&self) -> usize {
        let rings = self.ctx.shared().rings();
        self.tx.as_ref().map_or(0, |_| rings.tx_max_untagged())
    }

    /// Largest 802.1Q-tagged frame (outer EtherType 0x8100) `send` accepts: the interface
    /// MTU + 18 (bounded by the TX slot's room), or 0 without a TX ring. Under a 0x88A8 or
    /// 0x9100 outer tag the limit stays [`Sock::max_frame`]: the kernel's AF_PACKET transmit
    /// path allows the extra 4 bytes for 802.1Q only and silently discards longer frames, so
    /// `send` refuses them with [`Error::TooBigPacket`].
    pub fn max_tagged_frame(&self) -> usize {
        let rings = self.ctx.shared().rings();
        self.tx.as_ref().map_or(0, |_| rings.tx_max_tagged())
    }

    /// Frames queued by `send` and not yet taken by the kernel.
    pub fn pending(&self) -> u32 {
        self.tx.as_ref().map_or(0, |t| t.pending())
    }

    /// Failed TX submissions so far and the errno of the last one (`flush` cannot return an
    /// error, [`Socket::try_flush`] does; frames of a failed submission stay queued and go
    /// with the next flush).
    pub fn tx_errors(&self) -> (u64, Option<i32>) {
        self.tx.as_ref().map_or((0, None), |t| t.errors())
    }

    /// The kernel's statistics since the previous call (`PACKET_STATISTICS`, which resets
    /// them on every read): packets that reached the socket, packets dropped (ring full), times
    /// the ring was frozen. Every read is also added to the totals that [`Socket::stats`]
    /// reports, so calling this does not lose anything from there.
    pub fn native_stats(&self) -> Result<libc::tpacket_stats_v3> {
        let st = sys::packet_stats(self.ctx.shared().raw_fd())
            .map_err(|e| Error::os(format!("reading PACKET_STATISTICS on {}", self.ifname), e))?;
        self.kernel_drops
            .set(self.kernel_drops.get() + u64::from(st.tp_drops));
        Ok(st)
    }

    /// The error of a failed submission, with the interface.
    fn flush_error(&self, errno: i32) -> Error {
        if matches!(errno, libc::ENETDOWN | libc::ENXIO | libc::ENODEV) {
            Error::InterfaceDown(self.ifname.clone())
        } else {
            Error::os(
                format!("AF_PACKET: submitting the TX ring of {}", self.ifname),
                std::io::Error::from_raw_os_error(errno),
            )
        }
    }

    fn open(
        name: &str,
        geo: &Geometry,
        flags: &AfPacketFlags,
    ) -> Result<(OwnedFd, SharedMap, i32, u32)> {
        let ifindex = sys::if_index(name)?;
        let fd = sys::packet_socket(name)?;
        let on = |opt, what: &str| int_opt(&fd, opt, 1, &format!("{what} on {name}"));
        int_opt(
            &fd,
            libc::PACKET_VERSION,
            libc::tpacket_versions::TPACKET_V3 as libc::c_int,
            &format!("selecting TPACKET_V3 on {name}"),
        )?;
        // Frame stamps: the NIC's raw hardware stamp where the device is set to stamp received
        // frames (SIOCSHWTSTAMP, e.g. `hwstamp_ctl -r 1`), the kernel's software stamp
        // otherwise; `tp_status` says which (TP_STATUS_TS_RAW_HARDWARE / _SOFTWARE).
        int_opt(
            &fd,
            PACKET_TIMESTAMP,
            libc::SOF_TIMESTAMPING_RAW_HARDWARE as libc::c_int,
            &format!("PACKET_TIMESTAMP on {name}"),
        )?;
        if geo.tx.is_some() {
            // A malformed TX frame is skipped instead of stopping the ring.
            on(libc::PACKET_LOSS, "PACKET_LOSS")?;
        }
        if flags.qdisc_bypass {
            on(libc::PACKET_QDISC_BYPASS, "PACKET_QDISC_BYPASS")?;
        }
        if flags.ignore_outgoing {
            on(libc::PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING")?;
        }
        let rx = libc::tpacket_req3 {
            tp_block_size: geo.rx.block_size,
            tp_block_nr: geo.rx.block_count,
            tp_frame_size: geo.rx.frame_size,
            tp_frame_nr: geo.rx.frame_count(),
            tp_retire_blk_tov: flags.block_timeout_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: libc::TP_FT_REQ_FILL_RXHASH,
        };
        sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &rx,
            &format!(
                "setting up the RX ring ({} blocks of {} bytes) on {name}",
                geo.rx.block_count, geo.rx.block_size
            ),
        )?;
        if let Some(tx) = geo.tx {
            let req = libc::tpacket_req3 {
                tp_block_size: tx.block_size,
                tp_block_nr: tx.block_count,
                tp_frame_size: tx.frame_size,
                tp_frame_nr: tx.frame_count,
                tp_retire_blk_tov: 0,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            sys::setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_TX_RING,
                &req,
                &format!(
                    "setting up the TX ring ({} frames of {} bytes) on {name}",
                    tx.frame_count, tx.frame_size
                ),
            )?;
        }
        let map = sys::map_rings(&fd, geo.map_bytes(), name)?;
        if let Some(prog) = &geo.filter {
            sys::attach_filter(&fd, prog, name)?;
        }
        if flags.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex,
                mr_type: libc::PACKET_MR_PROMISC as u16,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            sys::setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
                &format!("entering promiscuous mode on {name}"),
            )?;
        }
        use std::os::fd::AsRawFd;
        sys::bind(fd.as_raw_fd(), ifindex, sys::ETH_P_ALL_BE)
            .map_err(|e| Error::os(format!("binding the AF_PACKET socket to {name}"), e))?;
        if let Some(f) = flags.fanout {
            let arg = f.raw_arg() as libc::c_int;
            int_opt(
                &fd,
                libc::PACKET_FANOUT,
                arg,
                &format!(
                    "joining fanout group {} ({:?}) on {name} (a group's members must agree on mode and flags)",
                    f.group, f.mode
                ),
            )?;
        }
        let mtu = sys::if_mtu(&fd, name)?;
        Ok((fd, map, ifindex, mtu))
    }
}

impl Socket for Sock {
    type Context = AfPacketContext;
    type Metadata = AfPacketMeta;
    type Flags = AfPacketFlags;

    /// As [`Socket::recv`]'s default, inlined whole into the caller's loop (and building the
    /// result once, not through `recv_token`'s).
    #[inline(always)]
    fn recv(&self) -> Result<(Payload<'_, AfPacketContext>, AfPacketMeta)> {
        match self.rx.next(self.ctx.shared()) {
            Some(p) => {
                self.received.set(self.received.get() + 1);
                Ok(p.into_payload(&self.ctx))
            }
            None => self.empty(),
        }
    }

    #[inline(always)]
    fn recv_token(&self) -> Result<(Token, AfPacketMeta)> {
        match self.rx.next(self.ctx.shared()) {
            Some(p) => {
                self.received.set(self.received.get() + 1);
                let meta = p.meta;
                Ok((p.into_token(&self.ctx), meta))
            }
            None => self.empty(),
        }
    }

    /// Walks the open block (and the next ones the kernel handed over) in one call, up to
    /// `sink.remaining()` packets; the link and held-block checks run once, when nothing came.
    #[inline]
    fn fill_batch(&self, sink: &mut BatchSink<'_, AfPacketMeta>) -> Result<()> {
        let shared = self.ctx.shared();
        let mut n = 0u64;
        while sink.remaining() > 0 {
            let Some(p) = self.rx.next(shared) else {
                break;
            };
            let meta = p.meta;
            let t = p.into_token(&self.ctx);
            n += 1;
            if let Err((t, _)) = sink.push(t, meta) {
                // Unreachable (room was checked); kept total.
                drop(nethuns_core::Context::packet(&self.ctx, t));
            }
        }
        self.received.set(self.received.get() + n);
        if n == 0 {
            self.idle()
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    fn send(&self, packet: &[u8]) -> Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(self.ctx.shared(), packet)
                .inspect_err(|_| self.tx_seen()),
            None => Err(self.no_tx_ring("send")),
        }
    }

    /// Writes the frame straight into the next TX slot (no copy); the size rule of `send`,
    /// on `len` first (at most [`Sock::max_tagged_frame`]) and on the written frame after
    /// `fill` (over [`Sock::max_frame`] only with an 802.1Q outer tag). A refused frame
    /// leaves the slot free. `fill` sees the slot's earlier bytes.
    #[inline(always)]
    fn send_with<F: FnOnce(&mut [u8])>(&self, len: usize, fill: F) -> Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send_with(self.ctx.shared(), len, fill)
                .inspect_err(|_| self.tx_seen()),
            None => Err(self.no_tx_ring("send_with")),
        }
    }

    /// Queues the frames into consecutive TX slots and submits them with one `sendto`.
    #[inline]
    fn send_batch(&self, packets: &[&[u8]]) -> Result<usize> {
        let Some(tx) = &self.tx else {
            return Err(self.no_tx_ring("send_batch"));
        };
        let shared = self.ctx.shared();
        let mut n = 0;
        for p in packets {
            match tx.send(shared, p) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => {
                    self.flush();
                    self.tx_seen();
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        self.flush();
        Ok(n)
    }

    #[inline]
    fn flush(&self) {
        if let Some(tx) = &self.tx {
            if tx.flush(self.ctx.shared()).is_err() {
                self.tx_seen();
            }
        }
    }

    /// Submits the queued frames like [`Socket::flush`] and reports a failure:
    /// [`Error::InterfaceDown`] if the interface is down or gone, else [`Error::Os`] with the
    /// errno. The kernel not taking every frame at once (its send buffer full, the qdisc
    /// refusing one) is not a failure: those frames stay queued ([`Sock::pending`]) for the
    /// next flush, as they do after a failure.
    fn try_flush(&self) -> Result<()> {
        match &self.tx {
            Some(tx) => tx.flush(self.ctx.shared()).map_err(|errno| {
                self.tx_seen();
                self.flush_error(errno)
            }),
            None => Ok(()),
        }
    }

    /// `received` and `sent` are counted by the socket since it was created (`sent`: frames
    /// the kernel took from the TX ring); `dropped` is the kernel's `tp_drops` summed since
    /// creation (packets for this socket lost because the ring was full, i.e. every block
    /// was the user's); `filtered` is `None` (the kernel does not count what a socket filter
    /// rejects); `send_errors` counts failed submissions and frames the kernel refused.
    fn stats(&self) -> Result<Stats> {
        self.native_stats()?;
        let (send_errors, _) = self.tx_errors();
        Ok(Stats {
            received: self.received.get(),
            dropped: Some(self.kernel_drops.get()),
            filtered: None,
            sent: self.tx.as_ref().map_or(0, |t| t.sent()),
            send_errors,
        })
    }

    /// `max_frame` is the interface MTU + 14 (an 802.1Q-tagged frame may be 4 bytes longer),
    /// as read at `create`, bounded by the TX slot (0 without a TX ring); nanosecond timestamps;
    /// zero-copy receive; the socket's descriptor polls for `POLLIN`; tcpdump expressions with
    /// feature `pcap` (classic BPF programs always).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            max_frame: self.max_frame(),
            min_frame: ETH_HLEN,
            timestamps: true,
            zero_copy: true,
            pollable_fd: Some(self.ctx.shared().raw_fd()),
            filters: cfg!(feature = "pcap"),
        }
    }

    /// Opens an AF_PACKET socket on interface `portspec` (optionally written `afpacket:IF`).
    ///
    /// `queue`: `None` captures all the interface's traffic (or this socket's share of it, with
    /// `flags.fanout`). `Some(i)` declares the socket member `i` of the fanout group in
    /// `flags.fanout`, which it then requires: AF_PACKET cannot bind to a NIC queue, and the
    /// kernel numbers group members in the order they join, so open members `0, 1, …` in order
    /// (with [`FanoutMode::QueueMapping`](crate::FanoutMode::QueueMapping), member `i` then
    /// gets RX queue `i`).
    ///
    /// Flags are all checked first ([`Error::InvalidFlag`] naming the field); then a missing
    /// interface is an [`Error::Os`] naming it; kernel refusals are [`Error::Os`] saying which
    /// step failed.
    fn create(portspec: &str, queue: Option<usize>, flags: AfPacketFlags) -> Result<Self> {
        let geo = flags.validate()?;
        let name = check_portspec(portspec)?;
        if queue.is_some() && flags.fanout.is_none() {
            return Err(Error::flag(
                "fanout",
                format!(
                    "queue {queue:?} names a fanout group member, but no fanout group is set \
                     (AF_PACKET cannot bind to a NIC queue; pass None)"
                ),
            ));
        }
        #[cfg(feature = "pcap")]
        let geo = live_filter(geo, &flags, name)?;
        let (fd, map, ifindex, mtu) = Self::open(name, &geo, &flags)?;
        let mut shared = Shared::new(map, geo.rx, Some(fd));
        let tx = geo.tx.map(|t| {
            let slots = shared.rings_mut().tx_slots(t, geo.rx.bytes(), mtu);
            TxRing::new(t, slots)
        });
        let rx = RxCursor::new(shared.rings(), flags.strip_vlan);
        let ctx = AfPacketContext::new(shared);
        Ok(Sock {
            ctx,
            ifname: name.to_string(),
            ifindex,
            queue,
            fanout: flags.fanout,
            rx,
            tx,
            link: LinkWatch::new(),
            mtu,
            received: Cell::new(0),
            kernel_drops: Cell::new(0),
        })
    }

    #[inline]
    fn context(&self) -> &AfPacketContext {
        &self.ctx
    }
}

impl Sock {
    /// What `recv` returns when the cursor has nothing: [`Sock::idle`]'s error, else
    /// `NoPacket`.
    #[inline(always)]
    fn empty<T>(&self) -> Result<T> {
        self.idle()?;
        Err(Error::NoPacket)
    }

    /// The checks of an empty ring: `NoMemory` while the next block is held by payloads or
    /// tokens of the previous lap (the ring cannot advance, and the kernel drops once it
    /// reaches it, until they are released); now and then (and always once down) whether the
    /// interface is still there.
    #[inline(always)]
    fn idle(&self) -> Result<()> {
        if self.link.tick() {
            self.on_idle()?;
        }
        if self.rx.blocked(self.ctx.shared()) {
            Err(Error::NoMemory)
        } else {
            Ok(())
        }
    }

    /// The error of a transmit call on a socket without a TX ring.
    #[cold]
    fn no_tx_ring(&self, what: &str) -> Error {
        Error::Unsupported(format!(
            "{what} on {}: the socket has no TX ring (tx_frame_count is 0)",
            self.ifname
        ))
    }

    /// After a failed transmission: if it found the interface down, the next empty `recv`
    /// reports it (the failure consumed the socket error that `recv` looks for).
    #[cold]
    fn tx_seen(&self) {
        if self.tx.as_ref().is_some_and(|t| t.take_saw_down()) {
            self.link.mark_down();
        }
    }

    /// The slow part of an empty `recv`, every few calls: is the interface still there?
    #[cold]
    #[inline(never)]
    fn on_idle(&self) -> Result<()> {
        let saw_down = self.tx.as_ref().is_some_and(|t| t.take_saw_down());
        let Some(fd) = self.ctx.shared().fd() else {
            return Ok(()); // no socket, no interface to watch (never for a created socket)
        };
        self.link
            .on_idle(saw_down, fd.as_fd(), &self.ifname, self.ifindex)
    }
}

/// The socket's descriptor, to wait for packets with `poll`/`epoll` (`POLLIN` when the kernel
/// has handed over a block) instead of spinning on [`Error::NoPacket`]. Do not read from it or
/// change its options.
impl std::os::fd::AsRawFd for Sock {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ctx.shared().raw_fd()
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            // Frames the kernel could not take at once (its send buffer full) go with a few
            // more submissions, for at most DROP_FLUSH.
            let end = std::time::Instant::now() + DROP_FLUSH;
            while tx.flush(self.ctx.shared()).is_ok()
                && tx.pending() > 0
                && std::time::Instant::now() < end
            {
                std::thread::yield_now();
            }
        }
        self.rx.close(self.ctx.shared());
        // Payloads or context clones may keep the ring (and so the socket) alive after this:
        // stop the kernel from filling it. Fanout members cannot unbind; they get a filter
        // that drops everything instead.
        let fd = self.ctx.shared().raw_fd();
        if self.fanout.is_some() {
            let drop_all = [crate::BpfInstruction::new(0x06, 0, 0, 0)];
            if let Some(f) = self.ctx.shared().fd() {
                let _ = sys::attach_filter(f, &drop_all, &self.ifname);
            }
        } else {
            let _ = sys::bind(fd, self.ifindex, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn thread_bounds() {
        send::<Sock>();
        send_sync::<AfPacketContext>();
    }

    #[test]
    fn portspecs() {
        assert_eq!(check_portspec("eth0").unwrap(), "eth0");
        assert_eq!(check_portspec("afpacket:eth0").unwrap(), "eth0");
        assert_eq!(check_portspec("a23456789012345").unwrap().len(), 15);
        for bad in ["", "afpacket:", "a234567890123456", "a/b", "a b", "a\0"] {
            assert!(
                matches!(check_portspec(bad), Err(Error::InvalidPortspec { .. })),
                "{bad:?}"
            );
        }
    }
}
