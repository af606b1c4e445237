//! The debug-build record of which buffers are owned by tokens and payloads, so that a double
//! release panics with the buffer and its pool named instead of corrupting an engine's free
//! list, fill ring, mempool or block count.
//!
//! [`Token::new`](crate::Token::new) records the buffer it is given (every backend mints its
//! tokens there); every backend's [`Context::release`](crate::Context::release) calls
//! [`released`] first, which panics if the buffer is not recorded: released twice, never
//! handed out, or of another pool. In release builds both compile to nothing.
//!
//! ```
//! use nethuns_core::{pool::PoolContext, Context};
//!
//! let ctx = PoolContext::new(2, 64);
//! let p1 = ctx.alloc_payload(b"AAAA").unwrap();
//! let desc = p1.buffer_desc();
//! drop(p1);
//! // SAFETY: none — this is the misuse the ledger catches in debug builds.
//! # #[cfg(debug_assertions)]
//! assert!(std::panic::catch_unwind(|| unsafe { ctx.release(desc) }).is_err());
//! ```

use crate::context::BufferDesc;

#[cfg(debug_assertions)]
fn held() -> std::sync::MutexGuard<'static, std::collections::HashSet<(u32, usize)>> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static HELD: OnceLock<Mutex<HashSet<(u32, usize)>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Records that buffer `desc` of pool `pool` is now owned by a token. Debug builds panic if
/// it already was (an engine handed out one buffer twice).
#[inline]
pub fn minted(pool: u32, desc: BufferDesc) {
    #[cfg(debug_assertions)]
    assert!(
        held().insert((pool, desc.get())),
        "nethuns: buffer {:#x} of pool {pool} handed out twice",
        desc.get()
    );
    #[cfg(not(debug_assertions))]
    let _ = (pool, desc);
}

/// Records that buffer `desc` of pool `pool` goes back to its context. Debug builds panic if
/// no token owned it: a double release, or a buffer never handed out.
#[inline]
pub fn released(pool: u32, desc: BufferDesc) {
    #[cfg(debug_assertions)]
    assert!(
        held().remove(&(pool, desc.get())),
        "nethuns: buffer {:#x} of pool {pool} released twice (or never handed out)",
        desc.get()
    );
    #[cfg(not(debug_assertions))]
    let _ = (pool, desc);
}

/// Forgets buffer `desc` of pool `pool` without a release (a token given up with
/// [`Token::into_raw`](crate::Token::into_raw)).
#[inline]
pub fn forget(pool: u32, desc: BufferDesc) {
    #[cfg(debug_assertions)]
    held().remove(&(pool, desc.get()));
    #[cfg(not(debug_assertions))]
    let _ = (pool, desc);
}
