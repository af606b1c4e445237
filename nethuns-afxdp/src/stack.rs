//! [`FrameStack`]: a bounded stack of UMEM addresses for one thread, without atomics or
//! borrow flags (the TX free list, the frames released through the socket's handle).

use std::cell::Cell;

/// A stack of at most `capacity` UMEM addresses. `Cell`s make it `!Sync`: one thread at a
/// time uses it, so a push or pop is a plain load and store.
pub(crate) struct FrameStack {
    slots: Box<[Cell<u64>]>,
    /// Invariant: `len ≤ slots.len()` (only `push` raises it, after checking).
    len: Cell<u32>,
}

impl FrameStack {
    /// An empty stack with room for `capacity` addresses.
    pub(crate) fn with_capacity(capacity: u32) -> Self {
        FrameStack {
            slots: (0..capacity).map(|_| Cell::new(0)).collect(),
            len: Cell::new(0),
        }
    }

    /// Addresses on the stack.
    #[inline]
    pub(crate) fn len(&self) -> u32 {
        self.len.get()
    }

    /// Pushes `addr`; `false` (and nothing pushed) when the stack is full.
    #[inline]
    pub(crate) fn push(&self, addr: u64) -> bool {
        let n = self.len.get();
        match self.slots.get(n as usize) {
            Some(s) => {
                s.set(addr);
                self.len.set(n + 1);
                true
            }
            None => false,
        }
    }

    /// The address on top, taken off.
    #[inline]
    pub(crate) fn pop(&self) -> Option<u64> {
        let n = self.len.get().checked_sub(1)?;
        // SAFETY: n < len ≤ slots.len() (the invariant of `len`); unchecked, as this is the
        // per-packet pop of `send`.
        let a = unsafe { self.slots.get_unchecked(n as usize) }.get();
        self.len.set(n);
        Some(a)
    }

    /// Calls `f` with every address (bottom first) and empties the stack; returns how many
    /// there were.
    #[inline]
    pub(crate) fn drain(&self, mut f: impl FnMut(u64)) -> u32 {
        let n = self.len.get();
        for s in &self.slots[..n as usize] {
            f(s.get());
        }
        self.len.set(0);
        n
    }

    /// The addresses on the stack, bottom first.
    pub(crate) fn to_vec(&self) -> Vec<u64> {
        self.slots[..self.len.get() as usize]
            .iter()
            .map(Cell::get)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lifo() {
        let s = FrameStack::with_capacity(2);
        assert!(s.push(1) && s.push(2));
        assert!(!s.push(3));
        assert_eq!(s.to_vec(), [1, 2]);
        assert_eq!(s.pop(), Some(2));
        assert!(s.push(4));
        let mut seen = vec![];
        assert_eq!(s.drain(|a| seen.push(a)), 2);
        assert_eq!(seen, [1, 4]);
        assert_eq!((s.len(), s.pop()), (0, None));
    }
}
