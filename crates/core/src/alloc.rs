//! A bump arena for short-lived processes.
//!
//! musl's allocator maps and unmaps pages for small allocations; at start-up (clap, TOML,
//! logging) that is most of a hook's CPU time. hakit's binaries mostly live for a few
//! milliseconds, so allocations come from a 4 MiB arena in `.bss` (zero pages, faulted in
//! as used, no file size): a pointer bump, no syscall. Freed arena memory is not reused;
//! once the arena is used up (long-running modes: the FIFO reader, peer watch), allocations
//! go to the system allocator as usual, so memory stays bounded by the arena plus what the
//! system allocator holds.
#![allow(unsafe_code)] // a global allocator is unsafe by nature; every block says why it holds

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::UnsafeCell,
    sync::atomic::{AtomicUsize, Ordering},
};

const SIZE: usize = 4 << 20;

#[repr(C, align(4096))]
struct Space(UnsafeCell<[u8; SIZE]>);

// SAFETY: the arena hands out disjoint ranges (an atomic bump), so no two threads ever
// get the same bytes; the bytes are only reached through the pointers it returns.
unsafe impl Sync for Space {}

static SPACE: Space = Space(UnsafeCell::new([0; SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);

/// The global allocator of hakit's binaries (`#[global_allocator]` in each `main.rs`).
pub struct Arena;

impl Arena {
    fn base() -> usize {
        SPACE.0.get() as usize
    }

    fn owns(ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= Self::base() && p < Self::base() + SIZE
    }
}

#[allow(unsafe_code)]
// SAFETY: `alloc` returns either a fresh, suitably aligned range of the arena that no
// other allocation overlaps (reserved by a compare-exchange on USED) or the system
// allocator's result; `dealloc` hands non-arena pointers back to the system allocator and
// ignores arena ones (never reused), so no pointer is ever freed twice or by the wrong owner.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = Self::base();
        let mut used = USED.load(Ordering::Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = match start.checked_add(layout.size()) {
                Some(e) if e <= SIZE => e,
                // SAFETY: forwarded unchanged; the caller's layout contract holds.
                _ => return unsafe { System.alloc(layout) },
            };
            match USED.compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::owns(ptr) {
            // SAFETY: not an arena pointer, so it came from System.alloc with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !Self::owns(ptr) {
            // SAFETY: a System allocation, grown by System with the same contract.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for min(old, new) bytes and do not overlap
            // (the new range was just reserved, or came from System).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_disjoint_and_falls_back_when_full() {
        let a = Arena;
        let mut ptrs = Vec::new();
        for align in [1usize, 8, 64, 4096] {
            let l = Layout::from_size_align(100, align).unwrap();
            // SAFETY: non-zero size, valid layout.
            let p = unsafe { a.alloc(l) };
            assert_eq!(p as usize % align, 0);
            ptrs.push((p as usize, l));
        }
        ptrs.sort_by_key(|p| p.0);
        for w in ptrs.windows(2) {
            assert!(w[0].0 + w[0].1.size() <= w[1].0, "overlap");
        }
        // Larger than the arena: served by the system allocator and freed there.
        let big = Layout::from_size_align(SIZE + 1, 8).unwrap();
        // SAFETY: valid layout; freed with the same layout below.
        let p = unsafe { a.alloc(big) };
        assert!(!p.is_null() && !Arena::owns(p));
        // SAFETY: allocated above with `big`.
        unsafe { a.dealloc(p, big) };
    }
}
