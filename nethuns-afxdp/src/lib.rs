//! # nethuns-afxdp
//!
//! The AF_XDP backend of nethuns (`af_xdp::Sock` in the facade): a Linux XSK socket bound to
//! one queue of one interface, whose UMEM is the [`Context`]. Received packets are handed out
//! **in place** — a [`Payload`] is a view of the UMEM frame the kernel wrote, with no copy —
//! and go back toward the fill ring when dropped, from any thread. Sent packets are copied into
//! a free TX frame and queued; [`Socket::flush`] submits the batch.
//!
//! Pick it on Linux for the fastest packet I/O the kernel offers without leaving the kernel's
//! drivers: native (DRV) mode on a NIC with an XDP driver, zero-copy where the driver supports
//! it. Generic (SKB) mode works on every device (veth, tun, any NIC) at a lower rate. For a
//! device without XDP, or for capture with filters, pick `nethuns-pcap` or `nethuns-afpacket`.
//!
//! ```no_run
//! use nethuns_afxdp::{AfXdpFlags, Error, Socket, Sock, XDP_COPY, XDP_FLAGS_DRV_MODE};
//!
//! let flags = AfXdpFlags {
//!     xdp_flags: XDP_FLAGS_DRV_MODE, // native mode; the default is generic (SKB) mode
//!     bind_flags: XDP_COPY,
//!     ..AfXdpFlags::default()
//! };
//! let socket = Sock::create("eth0", Some(0), flags)?;
//! for _ in 0..1_000_000 {
//!     match socket.recv() {
//!         Ok((packet, meta)) => {
//!             assert_eq!(packet.len(), meta.len as usize);
//!             socket.send(&packet)?; // echo it back (copied into a TX frame)
//!         } // `packet` dropped: its frame goes back toward the fill ring
//!         Err(Error::NoPacket) => socket.flush(),
//!         Err(e) => return Err(e),
//!     }
//! }
//! socket.flush();
//! # Ok::<(), Error>(())
//! ```
//!
//! ## How it maps onto AF_XDP
//! - **UMEM = [`Context`]** ([`Umem`]): `num_frames` frames of `frame_size` bytes; `tx_size`
//!   frames are TX frames, the others receive frames. A [`BufferDesc`] is a UMEM address (the
//!   packet's first byte); its pool id is unique per UMEM. The UMEM lives as long as any clone,
//!   so a [`Token`] can cross threads and become a payload there with a clone of the context
//!   (the [channel API](nethuns_core::channel) works as with any backend).
//! - **recv / recv_token** take a descriptor from the RX ring (inlined into the caller; the
//!   window boundary, every 64 packets, is one call). Dropping a payload of `recv` or
//!   `recv_batch`, which borrows the socket's own [`Umem`], pushes its frame on a plain stack
//!   (a `Umem` is not `Sync`, so that happens on the socket's thread: no atomic); a payload
//!   made from a token with a clone of the context, on any thread, pushes it on a lock-free
//!   stack (one compare-and-swap). The socket's thread moves both stacks to the fill ring in
//!   one batch when it finishes a batch of the RX ring. A token dropped unconsumed loses its
//!   frame until the UMEM goes (counted by [`nethuns_core::leaked_tokens`]).
//! - **send** copies into a free TX frame and queues the descriptor; every 64 packets, or on
//!   **flush**, the batch is published and the kernel kicked with `sendto` when the TX ring says
//!   it needs a wakeup (always in copy mode, where the kernel transmits only inside that call,
//!   32 frames at a time). Completed frames return to the TX free list in batches. With every TX
//!   frame in flight `send` returns [`Error::NoMemory`], or [`Error::InterfaceDown`] when the
//!   kernel takes nothing because the interface is down or gone (queued frames stay on the TX
//!   ring and leave once it is back); a packet longer than MTU + 14 bytes gives
//!   [`Error::TooBigPacket`], one shorter than 14 bytes [`Error::TooSmallPacket`]. A `Sock` is
//!   `AsRawFd`: `poll(2)` it for `POLLIN` to wait for frames instead of spinning.
//!   **send_batch** reserves TX frames and slots for the whole burst and publishes it with one
//!   producer store and one kick; **send_with** hands its closure the TX frame itself (no
//!   copy); **send_payload** of a frame received on this socket puts that frame's address on
//!   the TX ring (no copy, no TX frame used), and the completion ring gives it back to the
//!   fill ring; any other payload is copied like `send`.
//! - **Multi-buffer frames**: where the interface's MTU makes a frame larger than a UMEM frame
//!   after the kernel's 256-byte headroom (MTU 9000 with `frame_size` 2048 or 4096), the socket
//!   binds with `XDP_USE_SG` (Linux 6.6+), its steering program declares `xdp.frags`, and a
//!   frame spans several descriptors. Received, it is copied whole into a *jumbo buffer*
//!   (mapped after the UMEM, one per as many receive frames as a frame spans) and handed out as
//!   one contiguous payload; its segments go back to the fill ring at once. Sent, it is split
//!   over as many TX frames. With every jumbo buffer held, `recv` says
//!   [`Error::NoMemory`] and the frame waits on the RX ring. Single-buffer frames are
//!   untouched (zero copy). An MTU beyond 18 frames is refused with the `frame_size` or MTU
//!   that would work.
//! - **Timestamps and RX hash**: in native mode the steering program is bound to the device
//!   and asks the driver for each frame's RX timestamp and hash (XDP RX metadata kfuncs,
//!   Linux 6.3+), with a software stamp (taken by the program) where the driver has no
//!   timestamp; [`Metadata::timestamp`] and [`Metadata::rx_hash`] report them. In SKB mode,
//!   or on a kernel without the kfuncs, there are none ([`Sock::rx_metadata`] says why).
//! - **create(portspec, queue, flags)**: `portspec` is an interface name of the calling
//!   thread's network namespace; `queue` is the queue to bind, `None` meaning queue 0. The
//!   flags are checked before anything touches the kernel (each bad field is an
//!   [`Error::InvalidFlag`] naming it, see [`AfXdpFlags::validate`]); a bad name is an
//!   [`Error::InvalidPortspec`]; a request the kernel refuses (missing interface, a queue the
//!   device lacks, zero-copy on veth, no CAP_NET_ADMIN) is an [`Error::Os`] naming the
//!   interface, the queue and the errno.
//! - **Metadata** ([`Meta`]): frame length, the socket's queue, descriptor options, the outer
//!   VLAN tag's TCI read from the frame (AF_XDP delivers the frame as on the wire, tag
//!   included), and the XDP RX metadata above (timestamp, hash) where the program gets it.
//! - **stats / capabilities**: see [`Socket::stats`] and [`Socket::capabilities`] on
//!   [`Sock`] for how each field maps onto `XDP_STATISTICS`; the kernel's own counters are
//!   [`Sock::native_stats`].
//!
//! ## Sharing the queue with the kernel: [`Steer`]
//! The steering program decides which frames of the bound queue the socket gets; the others
//! go on to the kernel's stack (`XDP_PASS`) as if no program were there. Pass it in
//! [`AfXdpOptions`] to [`Sock::create_with_options`] (or once for every later `create` with
//! [`AfXdpOptions::set_process_default`]):
//! - [`Steer::ExceptHost`] (the default): everything except what the host needs to stay
//!   reachable — ARP, ICMPv6 (neighbour discovery), and IPv4/IPv6 packets to one of the
//!   interface's addresses (read at `create`) or to 255.255.255.255. A capture or forwarding
//!   program on the NIC a host is managed through leaves ARP, ping and SSH to the kernel; on
//!   an interface without addresses it gets every frame.
//! - [`Steer::Match`]: only the frames the user asked for — EtherType, IP protocol, TCP/UDP
//!   destination port ([`Match`]) — everything else to the kernel.
//! - [`Steer::All`]: every frame of the queue, the explicit opt-in for what C nethuns and
//!   libxdp's default program do; `create` warns once per interface on stderr when that
//!   interface carries IP addresses.
//! - [`Steer::Program`]: the user's own XDP program from an ELF object file ([`XdpObject`],
//!   built with `clang -target bpf`), as C nethuns allows: parsed and relocated with
//!   `aya-obj` (BTF-defined and legacy maps, `.data`/`.rodata`/`.bss`, calls), its maps
//!   created and the program loaded with this crate's `bpf(2)` calls; the sockets register in
//!   its XSKMAP (`xsks_map` by default).
//!
//! ```no_run
//! use nethuns_afxdp::{AfXdpFlags, AfXdpOptions, Match, Sock, Steer};
//! // VXLAN to this host, the rest (SSH, ARP, ping …) to the kernel.
//! let steer = Steer::Match(Match { ip_proto: Some(17), dst_port: Some(4789), ..Match::default() });
//! let sock = Sock::create_with_options("eth0", Some(0), AfXdpFlags::default(),
//!     AfXdpOptions { steer })?;
//! # Ok::<(), nethuns_afxdp::Error>(())
//! ```
//!
//! ## The steering program
//! Frames reach the socket through a small XDP program (the match of [`Steer`], then
//! `bpf_redirect_map` on an XSKMAP indexed by the RX queue, falling back to `XDP_PASS`;
//! `Steer::All` is the six-instruction redirect alone), assembled and loaded by this crate
//! with the `bpf(2)` syscall and attached through a **bpf_link** when the first socket on an
//! interface is created; it is detached when the process's last socket on that interface is
//! dropped, and by the kernel when the process dies, even by SIGKILL, so a crash never leaves
//! a program on the interface. Sockets of one process on one interface must use the same XDP
//! mode and the same [`Steer`], and one
//! process at a time owns an interface's XDP slot (a second process gets a clear `EBUSY`
//! error naming the interface; libxdp's multi-program dispatcher, which would lift this,
//! needs bpffs and outlives crashes).
//!
//! A program that libxdp attached through netlink and whose process died (DPDK's net_af_xdp
//! killed by SIGKILL leaves `xsk_def_prog` on the interface) is removed by the next socket's
//! create, and only when it is certainly stale: named `xsk_def_prog`, owned by no bpf_link,
//! and with no process holding a descriptor of it or of its maps. Any other program is left
//! in place and the error names it, who holds it, and `ip link set dev IF xdp off`.
//!
//! Why this crate speaks the AF_XDP ABI itself rather than through xsk-rs/libxdp, why a
//! bpf_link, and the measurements behind its defaults: `docs/af-xdp.md` in the nethuns
//! repository.
//!
//! ## Modes and devices
//! - `xdp_flags`: `XDP_FLAGS_SKB_MODE` (generic, the default), `XDP_FLAGS_DRV_MODE` (native),
//!   or 0 (the kernel picks native when the driver has it).
//! - `bind_flags`: `XDP_COPY`, `XDP_ZEROCOPY` (native mode and driver support needed), or 0
//!   (the kernel tries zero-copy and falls back to copy). `XDP_USE_NEED_WAKEUP` is always set.
//! - veth in native mode: veth runs a native program only on frames taken through its NAPI
//!   path, which needs a sender without TSO; attaching a native program to a veth end makes the
//!   kernel turn TSO off on its peer, so frames sent through the peer's stack (AF_PACKET,
//!   AF_XDP copy-mode TX, IP) reach the program with nothing to configure (tested on Linux
//!   6.x). An XDP program or GRO on the peer is needed only for frames that XDP *redirects*
//!   into a veth, which this crate never does.
//! - The frames [`Steer`] selects on the bound queue go to the socket; the others, and every
//!   frame of a queue without a socket, go to the kernel stack.
//!
//! ## Accounting and debugging
//! [`Sock::audit_frames`] finds every UMEM frame (fill ring, RX ring, released list, TX free
//! list, TX ring, completion ring) and counts those held by payloads/tokens; the tests use it
//! to show that no frame is lost after 1 000 000 packets. [`Sock::native_stats`] returns the
//! kernel's `XDP_STATISTICS` counters. Debug builds also panic on a frame released twice.
//!
//! ## Files
//! `sock.rs`: the socket and its `impl Socket` (its halves in `rx.rs`, `tx.rs`, `multibuf.rs`);
//! `context.rs`: the UMEM, the [`Context`]; `ring.rs`: the four rings as producers and
//! consumers; `flags.rs`: the options; `sys.rs`: every syscall; `abi.rs`: the kernel structs.
//! The steering program is `steer.rs`/`attach.rs`/`object.rs`/`rxmeta.rs`, the state of an
//! interface's XDP slot `xdpstate.rs`. Design notes: `docs/af-xdp.md` in the repository.
//!
//! ## Where the unsafe code is
//! Besides `sys.rs` and `abi.rs` (and the shared `nethuns-sys-linux`, which owns the ring and
//! UMEM mappings, and core's free list, which holds the frames released through clones):
//! - `context.rs`: the [`Context`] impl's `unsafe_buffer` and `release` (the trait makes them
//!   `unsafe fn`); the push of a released frame on the free list (its payload owned it);
//!   `send`'s copy into a TX frame and the VLAN read of each received frame, unchecked
//!   against the mapping (debug builds assert) because they run per packet.
//! - `rx.rs` and `multibuf.rs`: `Token::new` for a frame taken off the RX ring (or the jumbo
//!   buffer it was copied into): the token becomes the buffer's one owner.
//! - `sock.rs`: `Payload::from_token_unchecked` in `recv`, for a token the socket just made
//!   from its own UMEM (no pool check on the hot path).
//! - `tx.rs`: `send_with` hands its closure the `&mut [u8]` of a TX frame it took off the
//!   free list.
//! - `stack.rs`: the unchecked index of `FrameStack::pop` (below its length, which only a
//!   checked push raises), the per-packet pop of `send`.
//!
//! ## Tests
//! `cargo test -p nethuns-afxdp` as root runs real traffic between two network namespaces
//! over veth (nethuns-testnet): the conformance suite (`tests/conformance.rs`, backends
//! `af-xdp-skb` and `af-xdp-drv`: exact delivery both ways against a raw AF_PACKET peer,
//! size rules, pool exhaustion, tokens, channels, deleted interface, link down/up, stats, with
//! a frame audit after each case), AF_XDP to AF_XDP in both modes, multi-queue, every error
//! case, program detach on drop and after SIGKILL, the steering programs (each match run in
//! the kernel with `BPF_PROG_TEST_RUN`; ARP and ping across a filtered socket in
//! `tests/steering.rs`), and the 1M-packet accounting run (200 000
//! packets in debug builds; `NETHUNS_AFXDP_SOAK_PACKETS` overrides). Without root they skip,
//! or fail under `CI`.
//! The `#[ignore]`d lab tests (`tests/lab.rs`, run by `cargo xtask test-hw --iface IF`) do the
//! same checks in zero-copy native mode on a real NIC named by `NETHUNS_HW_IFACE`, with a peer
//! interface (`NETHUNS_HW_PEER`) or a looped-back cable (`NETHUNS_HW_LOOPBACK=1`).
//!
//! Linux only: on other systems this crate contains only the core re-exports and [`Meta`]
//! (no `Sock`), so that a workspace using it still builds there.

#[cfg(target_os = "linux")]
mod abi;
#[cfg(target_os = "linux")]
mod attach;
#[cfg(target_os = "linux")]
mod audit;
#[cfg(target_os = "linux")]
mod context;
#[cfg(target_os = "linux")]
mod features;
#[cfg(target_os = "linux")]
pub mod flags;
#[cfg(target_os = "linux")]
mod multibuf;
#[cfg(target_os = "linux")]
mod netdev;
#[cfg(target_os = "linux")]
mod object;
#[cfg(target_os = "linux")]
mod ring;
#[cfg(target_os = "linux")]
mod rx;
#[cfg(target_os = "linux")]
mod rxmeta;
#[cfg(target_os = "linux")]
mod sock;
#[cfg(target_os = "linux")]
mod stack;
#[cfg(target_os = "linux")]
mod steer;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod tx;
#[cfg(target_os = "linux")]
mod xdpstate;

#[cfg(target_os = "linux")]
pub use audit::FrameAudit;
#[cfg(target_os = "linux")]
pub use context::Umem;
#[cfg(target_os = "linux")]
pub use features::{
    driver_name, xdp_features, XdpFeatures, NETDEV_XDP_ACT_BASIC, NETDEV_XDP_ACT_REDIRECT,
    NETDEV_XDP_ACT_XSK_ZEROCOPY,
};
#[cfg(target_os = "linux")]
pub use flags::{
    AfXdpFlags, XDP_COPY, XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST,
    XDP_USE_NEED_WAKEUP, XDP_USE_SG, XDP_ZEROCOPY,
};
#[cfg(target_os = "linux")]
pub use sock::{Sock, XdpStatistics};
#[cfg(target_os = "linux")]
pub use steer::{AfXdpOptions, Match, Steer, XdpObject};

/// Metadata of a received frame: length, queue, descriptor options, outer VLAN tag, and the
/// RX timestamp and hash where the steering program gets them.
pub use nethuns_core::metadata::AfXdpMeta as Meta;
pub use nethuns_core::reexports::*;
