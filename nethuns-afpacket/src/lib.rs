//! # nethuns-afpacket
//!
//! The AF_PACKET backend of nethuns, on `libc` only: [`Sock`] receives through a Linux
//! TPACKET_v3 ring (`PACKET_RX_RING`, mapped into the process) and sends through a TX ring
//! (`PACKET_TX_RING`). Pick it for fast capture on any Linux interface with nothing but the
//! kernel: no copy on receive, no syscall per packet, kernel-side BPF filters, and fanout groups
//! that spread an interface's traffic over one socket per thread. (AF_XDP is faster where the
//! driver supports it; libpcap is more portable.)
//!
//! ```no_run
//! use nethuns_afpacket::{AfPacketFlags, Error, Fanout, FanoutMode, Sock, Socket};
//!
//! let flags = AfPacketFlags {
//!     fanout: Some(Fanout::new(42, FanoutMode::Hash)), // one socket per thread, same group
//!     ..AfPacketFlags::default()
//! };
//! let socket = Sock::create("eth0", None, flags)?;
//! let mut seen = 0;
//! while seen < 10 {
//!     match socket.recv() {
//!         Ok((packet, meta)) => {
//!             seen += 1;
//!             println!("{} of {} bytes at {}.{:09}", packet.len(), meta.len, meta.sec, meta.nsec);
//!         } // the payload is released here; its ring block returns when all its packets are
//!         Err(Error::NoPacket) => std::thread::yield_now(),
//!         Err(e) => return Err(e), // e.g. the interface went down
//!     }
//! }
//! socket.send(&[0xff; 60])?;
//! socket.flush();
//! # Ok::<(), Error>(())
//! ```
//!
//! ## How the ring maps onto nethuns
//! - **Context** ([`AfPacketContext`]): the mapped rings, shared by `Arc` with every clone. A
//!   [`BufferDesc`] is the byte offset of a packet in the mapping; its block is
//!   `offset / block_size`.
//! - **Receive**: the kernel fills a *block* with many packets and hands the whole block over.
//!   `recv` walks it, handing out payloads that point into the ring. Each block keeps an atomic
//!   count of the payloads and tokens out of it; the last release (on any thread, lock-free)
//!   gives the block back to the kernel. Held packets therefore hold their block: a token
//!   dropped unconsumed pins its block until the context goes (see
//!   [`nethuns_core::leaked_tokens`]), and when every block is held the kernel drops new
//!   packets. [`AfPacketContext::blocks_in_use`] shows how many are out.
//! - `recv` never blocks and makes no syscall while there are packets; when the next block is still the kernel's it returns [`Error::NoPacket`] at once. To
//!   sleep instead of spinning, `poll` the socket's descriptor (`Sock` is `AsRawFd`) for
//!   `POLLIN`. Only on that empty path, at most
//!   every [`CHECK_INTERVAL`], it polls the socket for an error, so an interface that goes
//!   down or is deleted gives [`Error::InterfaceDown`] within milliseconds instead of an
//!   endless `NoPacket`. When the next block is still held by payloads or tokens of the
//!   previous lap, the ring cannot advance (and the kernel drops once it gets there): `recv`
//!   returns [`Error::NoMemory`] until they are released.
//! - **VLAN**: the kernel takes the outer 802.1Q/802.1ad tag out of a received frame and
//!   into the packet header; `recv` puts it back (into the header room in front of the
//!   frame, as libpcap does), so the payload is the frame as on the wire, `len`/`caplen`
//!   count the tag, and [`Metadata::vlan`] is its outer TCI (also for a 0x9100 tag, which the
//!   kernel leaves in the frame). [`AfPacketFlags::strip_vlan`] keeps the kernel's form.
//! - **Send**: `send` copies the frame into the next free TX slot ([`Error::TooSmallPacket`]
//!   under 14 bytes; [`Error::TooBigPacket`] over [`Sock::max_frame`], the MTU + 14, or over
//!   [`Sock::max_tagged_frame`] (MTU + 18) for an 802.1Q-tagged frame (the kernel allows the
//!   extra tag for TPID 0x8100 only, and discards longer 0x88A8/0x9100 frames silently); [`Error::NoMemory`] if every slot
//!   is still queued or in flight after submitting the queued ones); `flush` submits all
//!   queued slots with one `sendto` ([`Socket::try_flush`] says if that failed).
//!   [`Socket::send_with`] lets a closure write the frame straight into the TX slot (the same
//!   size rule, on the length and then on the written frame; a refused frame leaves the slot
//!   free); [`Socket::send_batch`] fills consecutive slots and submits them with one `sendto`.
//!   [`Socket::send_payload`] copies (its default): the RX and TX rings are separate areas of
//!   the mapping, the kernel fills one and sends from the other, so a received packet cannot
//!   be queued where it lies. [`AfPacketFlags::qdisc_bypass`] sends straight to the driver.
//! - **Statistics** ([`Socket::stats`]): received and sent counted by the socket, dropped
//!   from the kernel's `PACKET_STATISTICS` (summed: the kernel resets it on every read;
//!   [`Sock::native_stats`] gives the raw numbers).
//! - **`queue`** in [`Socket::create`]: `None` for all traffic (or this socket's fanout share);
//!   `Some(i)` declares fanout member `i` and requires [`AfPacketFlags::fanout`].
//! - **Metadata** ([`Meta`]): nanosecond timestamp (`PACKET_TIMESTAMP` asks for the NIC's
//!   raw hardware stamp, which a device set to stamp received frames gives, e.g. after
//!   `hwstamp_ctl -r 1`; the kernel's software stamp otherwise, as on veth;
//!   `Meta::hardware_timestamp` says which), original and captured length, VLAN TCI/TPID, the
//!   kernel's flow hash, `tp_status`.
//!
//! ## The files
//! `sock.rs`: the socket ([`Sock`], `impl Socket`); `context.rs`: the ring memory
//! ([`AfPacketContext`], the block accounting); `flags.rs`: [`AfPacketFlags`];
//! `ring.rs`: the RX block ring and the TX frame ring over one `SharedMap`; `sys.rs`: every
//! syscall. No `abi.rs`: libc declares every TPACKET_v3 type. `rx.rs` walks a block, `tx.rs`
//! queues and submits TX slots, `link.rs` watches the interface, `geometry.rs` lays the rings
//! out. Why it is built so, and what was measured: `docs/af-packet.md`.
//!
//! ## Where the unsafe code is
//! The syscalls in `sys.rs`; the mapping is `nethuns_sys_linux::SharedMap`'s. Besides:
//! - `ring.rs`: the hot accesses to the mapping use `SharedMap`'s unchecked accessors (a
//!   block's status word, a packet header's fields, the tag bytes, a TX slot's status word,
//!   header and data), because the layout is checked once, when the socket is made, and a
//!   `Block` or `TxSlot` is made only by the `Rings` that checked it (a bounds check on each
//!   access cost 17 instructions a packet); and `Rings::tx_fill`, the `&mut [u8]` over a TX
//!   slot that `send_with`'s closure writes while the slot's status word keeps the kernel
//!   and `send` away;
//! - `context.rs`: `unsafe fn unsafe_buffer` and `unsafe fn release` of the `Context` impl
//!   (the trait demands them; their bodies are safe code);
//! - `rx.rs`: `RxPacket::into_token` and `into_payload` (`Token::new`,
//!   `Payload::from_token_unchecked`): the walker's packet carries the block reference the
//!   token takes over.
//!
//! ## Design notes
//! Why a TX ring rather than `sendmmsg`, why payloads hold their block, how the rings sit in
//! the mapping, and what was measured to decide: `docs/af-packet.md` in the nethuns
//! repository.
//!
//! ## Features
//! - `pcap`: [`Filter::Expression`] compiles tcpdump expressions with libpcap (needs
//!   `libpcap-dev`), for the live interface as `tcpdump -i` does (VLAN tests use the kernel's
//!   ancillary loads, since the kernel takes the tag out before the filter runs). Without it, filters are classic BPF programs ([`Filter::Classic`], e.g.
//!   from `tcpdump -dd`).
//! - `fuzzing`: entry points for the fuzz targets in `fuzz/` (the RX block walker over
//!   memory the fuzzer writes); not part of the API.
//!
//! Needs `CAP_NET_RAW` to open a socket.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod context;
mod flags;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod geometry;
mod link;
mod ring;
mod rx;
mod sock;
mod sys;
mod tx;

pub use context::AfPacketContext;
pub use flags::{
    page_size, AfPacketFlags, BpfInstruction, Fanout, FanoutMode, Filter, BPF_MAXINSNS,
    MAX_BLOCK_SIZE, MAX_BLOCK_TIMEOUT_MS, MAX_FRAME_SIZE, MAX_TX_FRAMES,
};
pub use geometry::{Geometry, RxGeometry, TxGeometry, TPACKET3_HDRLEN, TX_DATA_OFFSET};
pub use link::CHECK_INTERVAL;
pub use sock::Sock;

/// The `libc::tpacket_stats_v3` that [`Sock::native_stats`] returns.
pub use libc::tpacket_stats_v3 as NativeStats;
/// Metadata of a received packet, from its TPACKET_v3 header.
pub use nethuns_core::metadata::AfPacketMeta as Meta;
pub use nethuns_core::reexports::*;
