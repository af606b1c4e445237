//! [`SharedMap`]: one memory mapping, owned, with bounds-checked access at byte offsets.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

// Linux's hints; elsewhere (netmap on FreeBSD) the pages are faulted in on first touch and no
// swap reservation is skipped.
#[cfg(target_os = "linux")]
const MAP_POPULATE: libc::c_int = libc::MAP_POPULATE;
#[cfg(not(target_os = "linux"))]
const MAP_POPULATE: libc::c_int = 0;
#[cfg(target_os = "linux")]
const MAP_NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(not(target_os = "linux"))]
const MAP_NORESERVE: libc::c_int = 0;

/// Plain data that any bit pattern is a valid value of, with no padding that a read could
/// expose uninitialised: what [`SharedMap::read`] may return and [`SharedMap::write`] store.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self`, and `Self` must have
/// no padding bytes and no pointers or references (memory the kernel writes may hold anything).
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {
        $(
            // SAFETY: a primitive integer: every bit pattern is a value, no padding.
            unsafe impl Pod for $t {}
        )*
    };
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
// SAFETY: an array of Pod elements has no padding between them and every bit pattern of each
// element is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}
#[cfg(target_os = "linux")]
// SAFETY: `struct xdp_desc` (AF_XDP's RX/TX ring slot): a u64 and two u32s, no padding, any bits
// valid.
unsafe impl Pod for libc::xdp_desc {}

/// A memory mapping this value owns (unmapped on drop): a mapping shared with the kernel
/// (`mmap` of a descriptor) or an anonymous one.
///
/// Every access names a byte offset and is checked to lie inside the mapping (and, for the
/// atomics, to be aligned); an offset outside panics in the plain accessors, which take
/// offsets the backend computed from its own geometry, and gives `None` in the `try_`
/// accessors, which take offsets read from memory the kernel (or a hostile process) writes.
///
/// No accessor makes a Rust reference to the mapped bytes, except the atomics: reads and
/// writes are raw unaligned copies, so bytes changing under them (the kernel writing a frame)
/// are not undefined behaviour, only a torn value that the ring protocol rules out. Who owns
/// which bytes when is that protocol's business (status words, producer/consumer indices);
/// the payloads handed to users get raw slice pointers from [`SharedMap::range_ptr`], which
/// the `Context` contract of nethuns-core dereferences while the buffer is owned.
pub struct SharedMap {
    ptr: NonNull<u8>,
    /// What the accessors may reach.
    len: usize,
    /// What `munmap` releases: `len`, or more for a guarded mapping.
    map_len: usize,
}

// SAFETY: the mapping is plain memory; what each thread may touch is governed by the engine's
// ring protocol (atomics in the mapping), not by the thread that made it.
unsafe impl Send for SharedMap {}
// SAFETY: as above: shared access goes through atomics, or through raw copies of bytes the
// ring protocol gives to one party at a time; no `&`/`&mut` to plain bytes is handed out.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Maps `len` bytes of descriptor `fd` at `offset`, shared and read-write (the rings of a
    /// packet socket, an AF_XDP socket or /dev/netmap). `populate` pre-faults the pages
    /// (`MAP_POPULATE`).
    pub fn map(fd: impl AsFd, len: usize, offset: u64, populate: bool) -> io::Result<Self> {
        let flags = libc::MAP_SHARED | if populate { MAP_POPULATE } else { 0 };
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset too large"))?;
        Self::mmap(len, flags, fd.as_fd().as_raw_fd(), offset)
    }

    /// An anonymous private mapping of `len` zeroed bytes. With `populate` the pages are
    /// faulted in at once (`MAP_POPULATE`, for memory registered with the kernel); without,
    /// nothing is committed until a page is touched (`MAP_NORESERVE`).
    pub fn anonymous(len: usize, populate: bool) -> io::Result<Self> {
        let extra = if populate {
            MAP_POPULATE
        } else {
            MAP_NORESERVE
        };
        Self::mmap(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra, -1, 0)
    }

    /// An anonymous mapping of `len` zeroed bytes followed by one inaccessible page, so that
    /// a raw access past the end faults at once instead of reading a neighbour (fuzz targets
    /// of ring walkers). [`SharedMap::len`] is `len`; the guard page is not part of it.
    pub fn anonymous_guarded(len: usize) -> io::Result<Self> {
        let page = page_size();
        let total = len.next_multiple_of(page) + page;
        let whole = Self::anonymous(total, false)?;
        let guard = whole.range_ptr(total - page, page).cast::<libc::c_void>();
        // SAFETY: the last page of the mapping `whole` owns; nothing points into it yet.
        let rc = unsafe { libc::mprotect(guard, page, libc::PROT_NONE) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // What lies between `len` and the guard page stays mapped but out of the accessors'
        // reach; the whole is unmapped on drop.
        let mut m = whole;
        m.len = len;
        Ok(m)
    }

    fn mmap(
        len: usize,
        flags: libc::c_int,
        fd: libc::c_int,
        offset: libc::off_t,
    ) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mapping of 0 bytes",
            ));
        }
        // SAFETY: a fresh mapping at an address the kernel picks: no existing memory is
        // affected; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::Unsupported, "the kernel mapped at address 0")
        })?;
        Ok(SharedMap {
            ptr,
            len,
            map_len: len,
        })
    }

    /// The length of the mapping in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: a mapping has at least one byte).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte of the mapping, to hand to the kernel (an AF_XDP UMEM registration).
    #[inline]
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    #[inline(always)]
    fn fits(&self, off: usize, size: usize) -> bool {
        off <= self.len && size <= self.len - off
    }

    /// The raw slice pointer to bytes `off..off + len`, or `None` if they leave the mapping.
    /// Making the pointer is safe; reading or writing through it is the caller's promise
    /// that the ring protocol gives it those bytes.
    #[inline]
    pub fn try_range_ptr(&self, off: usize, len: usize) -> Option<*mut [u8]> {
        if !self.fits(off, len) {
            return None;
        }
        // `wrapping_add` keeps this free of `unsafe`; `fits` bounds it inside the mapping.
        let p = self.ptr.as_ptr().wrapping_add(off);
        Some(std::ptr::slice_from_raw_parts_mut(p, len))
    }

    /// As [`SharedMap::try_range_ptr`], panicking on a range outside the mapping.
    #[inline]
    pub fn range_ptr(&self, off: usize, len: usize) -> *mut [u8] {
        match self.try_range_ptr(off, len) {
            Some(p) => p,
            None => self.out_of_bounds(off, len),
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn out_of_bounds(&self, off: usize, len: usize) -> ! {
        panic!(
            "SharedMap: {len} bytes at offset {off} leave the {}-byte mapping (or are misaligned)",
            self.len
        )
    }

    #[inline(always)]
    fn raw<T>(&self, off: usize) -> Option<*mut T> {
        if self.fits(off, std::mem::size_of::<T>()) {
            Some(self.ptr.as_ptr().wrapping_add(off).cast::<T>())
        } else {
            None
        }
    }

    #[inline(always)]
    fn aligned<T>(&self, off: usize) -> Option<*mut T> {
        // The mapping is page-aligned, so the offset's alignment is the address's.
        if off % std::mem::align_of::<T>() != 0 {
            return None;
        }
        self.raw::<T>(off)
    }

    /// The 32-bit atomic at `off` (4-aligned), or `None` if it is outside or misaligned.
    #[inline]
    pub fn try_atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.aligned::<AtomicU32>(off)?;
        // SAFETY: `p` is inside the mapping, aligned, and the mapping lives as long as
        // `&self`; an AtomicU32 may alias memory other parties (the kernel) access atomically.
        Some(unsafe { &*p })
    }

    /// The 32-bit atomic at `off`; panics if outside the mapping or not 4-aligned.
    #[inline]
    pub fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        match self.try_atomic_u32(off) {
            Some(a) => a,
            None => self.out_of_bounds(off, 4),
        }
    }

    /// The 64-bit atomic at `off` (8-aligned), or `None` if it is outside or misaligned.
    #[inline]
    pub fn try_atomic_u64(&self, off: usize) -> Option<&AtomicU64> {
        let p = self.aligned::<AtomicU64>(off)?;
        // SAFETY: as in `try_atomic_u32`, for 8 aligned bytes.
        Some(unsafe { &*p })
    }

    /// The 64-bit atomic at `off`; panics if outside the mapping or not 8-aligned.
    #[inline]
    pub fn atomic_u64(&self, off: usize) -> &AtomicU64 {
        match self.try_atomic_u64(off) {
            Some(a) => a,
            None => self.out_of_bounds(off, 8),
        }
    }

    /// A copy of the `T` at `off` (any alignment), or `None` if it leaves the mapping.
    #[inline]
    pub fn try_read<T: Pod>(&self, off: usize) -> Option<T> {
        let p = self.raw::<T>(off)?;
        // SAFETY: `p` points to size_of::<T>() bytes inside the live mapping; the read is
        // unaligned and makes no reference; any bit pattern is a valid T (Pod).
        Some(unsafe { p.read_unaligned() })
    }

    /// A copy of the `T` at `off`; panics if it leaves the mapping.
    #[inline]
    pub fn read<T: Pod>(&self, off: usize) -> T {
        match self.try_read(off) {
            Some(v) => v,
            None => self.out_of_bounds(off, std::mem::size_of::<T>()),
        }
    }

    /// Stores `v` at `off` (any alignment); `None` if it would leave the mapping.
    #[inline]
    pub fn try_write<T: Pod>(&self, off: usize, v: T) -> Option<()> {
        let p = self.raw::<T>(off)?;
        // SAFETY: `p` points to size_of::<T>() writable bytes inside the live mapping; the
        // write is unaligned and makes no reference.
        unsafe { p.write_unaligned(v) };
        Some(())
    }

    /// Stores `v` at `off`; panics if it would leave the mapping.
    #[inline]
    pub fn write<T: Pod>(&self, off: usize, v: T) {
        if self.try_write(off, v).is_none() {
            self.out_of_bounds(off, std::mem::size_of::<T>())
        }
    }

    /// Copies `src` into the mapping at `off`; panics if it would leave the mapping. `src`
    /// may itself lie in this mapping (the copy is a `memmove`).
    #[inline]
    pub fn copy_to(&self, off: usize, src: &[u8]) {
        let dst = self.range_ptr(off, src.len()).cast::<u8>();
        // SAFETY: `dst` has src.len() writable bytes inside the mapping (checked above);
        // `ptr::copy` allows the two ranges to overlap.
        unsafe { std::ptr::copy(src.as_ptr(), dst, src.len()) };
    }

    /// Copies `dst.len()` bytes at `off` out of the mapping; panics if they leave it.
    #[inline]
    pub fn copy_from(&self, off: usize, dst: &mut [u8]) {
        let src = self.range_ptr(off, dst.len()).cast::<u8>();
        // SAFETY: `src` has dst.len() readable bytes inside the mapping (checked above); `dst`
        // is a `&mut` the caller owns, which may overlap nothing of the mapping that another
        // party owns, and `ptr::copy` allows overlap with this mapping.
        unsafe { std::ptr::copy(src, dst.as_mut_ptr(), dst.len()) };
    }

    /// Moves `n` bytes inside the mapping from `from` to `to` (the ranges may overlap);
    /// panics if either leaves the mapping.
    #[inline]
    pub fn copy_within(&self, from: usize, to: usize, n: usize) {
        let src = self.range_ptr(from, n).cast::<u8>();
        let dst = self.range_ptr(to, n).cast::<u8>();
        // SAFETY: both ranges lie inside the mapping (checked above); `ptr::copy` is a memmove.
        unsafe { std::ptr::copy(src, dst, n) };
    }

    /// The 32-bit atomic at `off`, with the bounds and alignment checked in debug builds only:
    /// for a hot path whose offsets come from a layout checked against the mapping once.
    ///
    /// # Safety
    /// `off + 4 <= self.len()` and `off` is a multiple of 4.
    #[inline(always)]
    pub unsafe fn atomic_u32_unchecked(&self, off: usize) -> &AtomicU32 {
        debug_assert!(self.aligned::<AtomicU32>(off).is_some());
        let p = self.ptr.as_ptr().wrapping_add(off).cast::<AtomicU32>();
        // SAFETY: the caller promises that `p` is inside the mapping and aligned; the mapping
        // lives as long as `&self`, and an AtomicU32 may alias memory the kernel accesses
        // atomically.
        unsafe { &*p }
    }

    /// A copy of the `T` at `off`, the bounds checked in debug builds only.
    ///
    /// # Safety
    /// `off + size_of::<T>() <= self.len()`.
    #[inline(always)]
    pub unsafe fn read_unchecked<T: Pod>(&self, off: usize) -> T {
        debug_assert!(self.fits(off, std::mem::size_of::<T>()));
        let p = self.ptr.as_ptr().wrapping_add(off).cast::<T>();
        // SAFETY: the caller promises size_of::<T>() bytes at `p` inside the live mapping; the
        // read is unaligned and makes no reference; any bit pattern is a valid T (Pod).
        unsafe { p.read_unaligned() }
    }

    /// Stores `v` at `off`, the bounds checked in debug builds only.
    ///
    /// # Safety
    /// `off + size_of::<T>() <= self.len()`.
    #[inline(always)]
    pub unsafe fn write_unchecked<T: Pod>(&self, off: usize, v: T) {
        debug_assert!(self.fits(off, std::mem::size_of::<T>()));
        let p = self.ptr.as_ptr().wrapping_add(off).cast::<T>();
        // SAFETY: the caller promises size_of::<T>() writable bytes at `p` inside the live
        // mapping; the write is unaligned and makes no reference.
        unsafe { p.write_unaligned(v) }
    }

    /// Copies `src` into the mapping at `off`, the bounds checked in debug builds only.
    ///
    /// # Safety
    /// `off + src.len() <= self.len()`.
    #[inline(always)]
    pub unsafe fn copy_to_unchecked(&self, off: usize, src: &[u8]) {
        debug_assert!(self.fits(off, src.len()));
        let dst = self.ptr.as_ptr().wrapping_add(off);
        // SAFETY: the caller promises src.len() writable bytes at `dst` inside the mapping;
        // `ptr::copy` allows `src` to overlap them.
        unsafe { std::ptr::copy(src.as_ptr(), dst, src.len()) }
    }

    /// Sets `n` bytes at `off` to `byte`; panics if they leave the mapping.
    #[inline]
    pub fn fill(&self, off: usize, n: usize, byte: u8) {
        let dst = self.range_ptr(off, n).cast::<u8>();
        // SAFETY: `n` writable bytes inside the mapping (checked above).
        unsafe { std::ptr::write_bytes(dst, byte, n) };
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        let len = self.map_len;
        // SAFETY: `ptr`/`len` are what mmap returned (the guard page included), unmapped once;
        // whoever reached into the mapping holds the owner of this value (an `Arc`), so
        // nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), len) };
    }
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

/// The page size of this machine.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::sync::atomic::Ordering;

    #[test]
    fn every_access_is_bounds_checked() {
        let m = SharedMap::anonymous(4096, false).unwrap();
        assert_eq!(m.len(), 4096);
        assert!(m.try_read::<u64>(4088).is_some());
        assert!(m.try_read::<u64>(4089).is_none());
        assert!(m.try_read::<u8>(usize::MAX).is_none());
        assert!(m.try_write::<u32>(4093, 1).is_none());
        assert!(m.try_atomic_u32(4092).is_some());
        assert!(m.try_atomic_u32(4094).is_none(), "misaligned");
        assert!(m.try_atomic_u64(4).is_none(), "misaligned");
        assert!(m.try_atomic_u64(4096).is_none());
        assert!(m.try_range_ptr(4000, 96).is_some());
        assert!(m.try_range_ptr(4000, 97).is_none());
        assert!(m.try_range_ptr(usize::MAX, 2).is_none());
        assert!(SharedMap::anonymous(0, false).is_err());
    }

    #[test]
    fn reads_writes_copies() {
        let m = SharedMap::anonymous(8192, true).unwrap();
        m.write::<u16>(1, 0xabcd);
        assert_eq!(m.read::<u16>(1), 0xabcd);
        m.atomic_u64(8).store(u64::MAX, Ordering::Release);
        assert_eq!(m.read::<[u32; 2]>(8), [u32::MAX; 2]);
        m.copy_to(100, b"hello");
        m.copy_within(100, 102, 5);
        let mut out = [0u8; 7];
        m.copy_from(100, &mut out);
        assert_eq!(&out, b"hehello");
        m.fill(100, 7, b'x');
        m.copy_from(100, &mut out);
        assert_eq!(&out, b"xxxxxxx");
    }

    #[test]
    fn unchecked_accessors_reach_the_same_bytes() {
        let m = SharedMap::anonymous(4096, false).unwrap();
        // SAFETY: every offset below is inside the 4096 bytes, the atomic's 4-aligned.
        unsafe { m.write_unchecked::<u32>(4092, 9) };
        assert_eq!(m.read::<u32>(4092), 9);
        // SAFETY: as above.
        unsafe { m.atomic_u32_unchecked(4092) }.store(10, Ordering::Relaxed);
        // SAFETY: as above.
        assert_eq!(unsafe { m.read_unchecked::<u32>(4092) }, 10);
        // SAFETY: as above.
        unsafe { m.copy_to_unchecked(4090, &[1, 2]) };
        assert_eq!(m.read::<[u8; 2]>(4090), [1, 2]);
    }

    #[test]
    #[should_panic(expected = "leave the 4096-byte mapping")]
    fn the_plain_accessors_panic_outside() {
        let m = SharedMap::anonymous(4096, false).unwrap();
        m.copy_to(4090, &[0; 7]);
    }

    #[test]
    fn a_guarded_mapping_ends_at_its_length() {
        let m = SharedMap::anonymous_guarded(100).unwrap();
        assert_eq!(m.len(), 100);
        m.write::<u32>(96, 5);
        assert!(m.try_read::<u32>(97).is_none());
    }

    #[test]
    fn maps_a_descriptor() {
        use std::io::Write;
        // A memfd stands in for a socket's rings: shared, so a second mapping sees the writes
        // of the first.
        let mut f = std::fs::File::from(memfd());
        f.write_all(&[0u8; 8192]).unwrap();
        let a = SharedMap::map(&f, 8192, 0, true).unwrap();
        let b = SharedMap::map(&f, 4096, 4096, false).unwrap();
        a.write::<u32>(4096 + 12, 99);
        assert_eq!(b.read::<u32>(12), 99);
    }

    fn memfd() -> OwnedFd {
        let name = c"nethuns-sys-linux-test";
        // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: a new descriptor owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }
}
