//! # nethuns-sys-linux
//!
//! The Linux pieces the kernel backends of nethuns share, so that their own code has no
//! pointer arithmetic and no `ioctl` of its own:
//! - [`SharedMap`] owns one memory mapping shared with the kernel (AF_PACKET's rings, AF_XDP's
//!   rings and UMEM, netmap's region) or an anonymous one, and hands out bounds-checked
//!   atomics, reads, writes and copies at byte offsets. Who may touch which bytes when is the
//!   engine's ring protocol; `SharedMap` makes sure no access leaves the mapping and no
//!   Rust reference to kernel-written bytes is ever made, so the accessors are safe.
//! - [`IndexRing`]: a producer/consumer ring of `T` slots with its index words inside one
//!   `SharedMap`, its geometry checked once so that a slot access is only a mask (AF_XDP's
//!   rings).
//! - [`netdev`]: an interface's index, MTU, flags, RX queue count and driver, and a socket's
//!   pending error, each an `io::Error` for the caller to put its context (interface, queue) on.
//!
//! ```
//! use nethuns_sys_linux::SharedMap;
//!
//! let map = SharedMap::anonymous(4096, false)?;
//! map.atomic_u32(64).store(7, std::sync::atomic::Ordering::Release);
//! map.write::<u16>(130, 0x0800);
//! assert_eq!(map.read::<u32>(64), 7);
//! assert_eq!(map.read::<u16>(130), 0x0800);
//! assert!(map.try_read::<u64>(4092).is_none()); // would leave the mapping
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Written by hand on `libc`: the maintained mmap crates (`memmap2`) map files for the
//! process's own use and hand out `&[u8]`/`&mut [u8]`, which is unsound over memory the kernel
//! writes concurrently; `vm-memory` does volatile access over guest memory but brings a
//! hypervisor's abstractions (regions, guest addresses) we do not need.
//!
//! `SharedMap`, `netdev::poll1`, `netdev::socket_error` and `netdev::if_index` also build on
//! FreeBSD, for netmap there; the interface ioctls are Linux's.
//!
//! ## Where the unsafe code is
//! All of this crate is the fence: `map.rs` (mmap/munmap, the raw accesses behind the bounds
//! checks, `unsafe trait Pod` for the plain-data types a read may return), `ring.rs` (the
//! slot reads and writes behind `IndexRing`'s one-time geometry check) and `netdev.rs` (the
//! ioctls and `getsockopt`/`poll` calls, each on a value this crate owns).

pub mod map;
pub mod netdev;
pub mod ring;

pub use map::{Pod, SharedMap};
pub use ring::{IndexRing, RingOffsets};
