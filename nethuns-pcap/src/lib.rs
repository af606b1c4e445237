//! # nethuns-pcap
//!
//! The libpcap backend of nethuns: [`Sock`] captures and injects packets on a live interface,
//! or replays a savefile (portspec `file:PATH`); [`Dumper`] writes savefiles. Pick it for
//! portability (any interface libpcap opens, BPF filters in tcpdump syntax, savefiles) rather
//! than speed: each received packet is copied once, into a buffer of the socket's pool.
//!
//! ```no_run
//! use nethuns_pcap::{Error, PcapFlags, Sock, Socket};
//!
//! let flags = PcapFlags { filter: Some("udp port 53".into()), ..PcapFlags::default() };
//! let socket = Sock::create("eth0", None, flags)?;
//! let mut seen = 0;
//! while seen < 10 {
//!     match socket.recv() {
//!         Ok((packet, meta)) => {
//!             seen += 1;
//!             println!("{} bytes of {} at {}s", packet.len(), meta.len, meta.timestamp.tv_sec);
//!         }
//!         Err(Error::NoPacket) => std::thread::yield_now(),
//!         Err(e) => return Err(e),
//!     }
//! }
//! socket.send(&[0u8; 60])?;
//! socket.flush();
//! # Ok::<(), Error>(())
//! ```
//!
//! Frames as they are: the receive pool's buffers follow `snaplen`, so a frame up to
//! `snaplen` bytes (9000-byte jumbo frames included) arrives whole, and a longer one arrives
//! with `caplen < len`. Timestamps keep their source's resolution: a savefile is read at its
//! own precision (nanosecond pcap and pcapng included), a live capture asks libpcap for
//! nanoseconds ([`PcapOptions::precision`]), and [`Meta`]'s `ts_precision` says which it got;
//! `Metadata::timestamp()` gives nanoseconds either way. [`Sock::link_type`] and
//! [`Sock::savefile_format`] report the source's link type (Linux cooked capture on `any`),
//! and a [`Dumper::for_source`] writes a savefile in that link type and precision, so a
//! replayed savefile is written back byte for byte. libpcap's kernel buffer is
//! [`PcapOptions::kernel_buffer_bytes`] (given to [`Sock::create_with_options`]).
//!
//! Errors from libpcap arrive as [`Error::Engine`] with engine `"pcap"` and the `pcap::Error`
//! as source (`err.engine_source::<pcap::Error>()`). `queue` must be `None`: libpcap selects no
//! queue.
//!
//! To wait for packets instead of spinning, `poll(2)` the socket's descriptor (`Sock` is
//! `AsRawFd` and `AsFd`: libpcap's `pcap_get_selectable_fd` on a live interface, an always
//! readable eventfd on a savefile; also [`Capabilities::pollable_fd`]), or call
//! [`wait::recv_timeout`], which does so.
//!
//! ## Files
//! `sock.rs`: the socket; `context.rs`: which context it uses (core's [`PoolContext`]) and
//! the copy into it; `flags.rs`: the flags; `sys.rs`: every libpcap and system call;
//! `abi.rs`: the libpcap declarations the `pcap` crate lacks. `rx.rs` (the dispatch
//! callbacks), `format.rs` and `savefile.rs` are safe code. Why libpcap through the `pcap`
//! crate, and what was measured: `docs/pcap.md` in the nethuns repository.
//!
//! ## Where the unsafe code is
//! - `sys.rs`: the libpcap calls (`pcap_dispatch` and its callback trampoline,
//!   `pcap_geterr`, `pcap_get_selectable_fd`, `pcap_get_tstamp_precision`) and `eventfd(2)`.
//! - `abi.rs`: their declarations.
//! - `context.rs`: one `Payload::from_token_unchecked`, for a token just made by the same
//!   context (the receive fast path skips the pool id check).
//! - `sock.rs`: one `BorrowedFd::borrow_raw` in `impl AsFd for Sock` (the descriptor is the
//!   capture handle's or the eventfd's, both owned by the socket).

mod abi;
mod context;
mod flags;
mod format;
mod rx;
mod savefile;
mod sock;
mod sys;

pub use flags::{PcapFlags, PcapOptions, DEFAULT_KERNEL_BUFFER_BYTES};
pub use format::{dlt_to_linktype, SavefileFormat};
pub use savefile::Dumper;
pub use sock::{Sock, FILE_PREFIX};

/// Metadata of a received packet: timestamp, original length, captured length.
pub use nethuns_core::metadata::PcapMeta as Meta;
pub use nethuns_core::pool::PoolContext;
pub use nethuns_core::reexports::*;
/// The `pcap` crate, for its `Direction`, `Stat` and `Error` types.
pub use pcap;
