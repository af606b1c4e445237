//! # nethuns-core
//!
//! The contract every nethuns backend fulfils, with no engine linked in: the [`Socket`],
//! [`Context`], [`Flags`] and [`Metadata`] traits; [`Payload`] (packet bytes borrowed from a
//! context, released on drop) and [`Token`] (ownership of a buffer that crosses threads and is
//! checked against the pool it came from); a lock-free [buffer pool](pool) for copy-based
//! backends; the [channel API](channel); and [`Error`].
//!
//! Pick a backend crate (`nethuns-pcap`, `nethuns-afpacket`, `nethuns-afxdp`, `nethuns-dpdk`,
//! `nethuns-netmap`) or the `nethuns` facade to do I/O; depend on this crate alone to write code
//! generic over backends:
//!
//! ```
//! use nethuns_core::{Error, Socket};
//!
//! /// Counts packets and bytes until `max` packets, with any backend.
//! fn meter<S: Socket>(sock: &S, max: u64) -> nethuns_core::Result<(u64, u64)> {
//!     let (mut pkts, mut bytes) = (0, 0);
//!     while pkts < max {
//!         match sock.recv() {
//!             Ok((payload, _meta)) => {
//!                 pkts += 1;
//!                 bytes += payload.len() as u64;
//!             } // payload dropped here: its buffer goes back to the socket
//!             Err(Error::NoPacket) => std::hint::spin_loop(),
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     Ok((pkts, bytes))
//! }
//! ```
//!
//! ## How backend-specific parts fit
//! - Errors: the engine's own error travels inside [`Error::Engine`] as a boxed source
//!   (downcast with [`Error::engine_source`]); OS failures are [`Error::Os`] with the call and
//!   the interface/queue in `context`.
//! - Metadata: each backend's metadata struct is plain data defined here ([`metadata`]) and
//!   re-exported by its crate as `Meta`, so [`MetadataType`] names every backend with no cfg.
//!
//! ## Where the unsafe code is
//! The ownership contract is the crate's reason for `unsafe`: a buffer has one owner, and the
//! calls that create or end an owner say so.
//! - `context.rs` ([`context`]): the [`Context`] trait's `unsafe fn unsafe_buffer` and
//!   `unsafe fn release` (their callers promise they own the buffer).
//! - `token.rs` ([`token`]): `unsafe fn Token::new` (the caller hands over a buffer it owns)
//!   and `unsafe fn Payload::from_token_unchecked` (the token is of that context); inside, the
//!   payload's `Deref`/`DerefMut` (`unsafe_buffer`, then the reference), `Drop` (`release`)
//!   and `into_token` (`ManuallyDrop::take`).
//! - `batch.rs` ([`batch`]): `unsafe fn BatchSink::into_received` (every token pushed is of
//!   that context); `Received` reads only the slots `push` wrote (`assume_init_ref`,
//!   `assume_init_read`) and makes payloads with `from_token_unchecked`; a test.
//! - `socket.rs` ([`socket`]): the default `recv` (`from_token_unchecked`) and `recv_batch`
//!   (`into_received`), for tokens the socket made from its own context; `wait.rs`
//!   ([`wait`]): `recv_timeout` likewise (its `poll(2)` is `nethuns-sys-linux`'s, so no system
//!   call is made here outside the pool); `channel.rs` ([`channel`]): `into_received` in a
//!   test.
//! - `pool.rs` ([`pool`]): the buffer pointers into its `SharedMap`, `unsafe fn put`; and
//!   `freelist.rs` ([`freelist`]): `unsafe fn push`, `unsafe trait Links`.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod batch;
pub mod channel;
pub mod context;
pub mod error;
pub mod frame;
pub mod freelist;
pub mod ledger;
pub mod metadata;
pub mod pool;
pub mod socket;
pub mod token;
pub mod wait;

pub use context::{next_pool_id, try_packet, BufferDesc, BufferRef, Context, ForeignToken};
pub use error::{BoxError, Error, Result};
pub use metadata::{Metadata, MetadataType};
pub use socket::{check_frame_len, Capabilities, Flags, Socket, Stats, Unsent};
pub use token::{leaked_tokens, Payload, Token};

/// The spec's `api` module: the core traits and types in one place.
pub mod api {
    pub use crate::batch::{BatchSink, Received};
    pub use crate::channel::{
        Batch, BatchChannel, IntoBatchChannel, NethunsPopper, NethunsPusher, PayloadBatch,
    };
    pub use crate::context::{BufferDesc, BufferRef, Context, ForeignToken};
    pub use crate::metadata::{Metadata, MetadataType};
    pub use crate::socket::{Capabilities, Flags, Socket, Stats, Unsent};
    pub use crate::token::{Payload, Token};
}

/// The spec's `errors` module.
pub mod errors {
    #[cfg(feature = "netmap")]
    #[cfg_attr(docsrs, doc(cfg(feature = "netmap")))]
    pub use crate::error::NetmapError;
    pub use crate::error::{BoxError, Error, Result};
}

pub use crossbeam_channel;
pub use flume;

/// Everything a backend crate re-exports, so that a user who depends on that crate alone has
/// the whole API: `pub use nethuns_core::reexports::*;` in each backend's `lib.rs`.
pub mod reexports {
    pub use crate::api;
    pub use crate::batch;
    pub use crate::channel;
    pub use crate::errors;
    pub use crate::frame;
    pub use crate::metadata;
    pub use crate::wait;
    pub use crate::{crossbeam_channel, flume};
    pub use crate::{
        leaked_tokens, BufferDesc, BufferRef, Capabilities, Context, Error, Flags, ForeignToken,
        Metadata, MetadataType, Payload, Result, Socket, Stats, Token, Unsent,
    };
}
