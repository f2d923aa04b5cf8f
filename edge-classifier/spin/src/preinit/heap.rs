//! The component's global allocator: the system allocator, except while `wasmtime wizer`
//! pre-initialises the component.
//!
//! Why: wizer snapshots linear memory into the component, and wasmtime maps that snapshot
//! copy-on-write into a new instance (microseconds) only while its initialised span is under
//! 16 MiB or at least half full; otherwise it copies the snapshot into every instance (11-25 ms
//! a request here). Loaded through the system allocator (dlmalloc), the classifier ended up
//! scattered over a 12.6 MB heap between the parsers' freed scratch blocks, which put the span
//! at 17 MB; zeroing those blocks shrank the file but left the span as wide.
//!
//! So while pre-initialising, blocks come from fresh pages above the system heap and are placed
//! first-fit by address, and freed blocks are zeroed: what the classifier keeps packs at the low
//! end and everything freed is zero, which the snapshot leaves out. On the 16k bundle the load
//! then peaks at 10.2 MB instead of 12.6, and what it keeps lies in the first 7.4 MB (a span of
//! 11.8 MB in all). Afterwards the pre-init heap is sealed: new blocks come from the system
//! allocator, and a pre-init block freed later stays where it is (each at most once per
//! instance, and little of the classifier is ever freed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::arch::wasm32;
use std::cell::UnsafeCell;
use std::mem::size_of;
use std::ptr;

/// Wasm page size.
const PAGE: usize = 65_536;
/// Block sizes and addresses are multiples of this, so every free block can hold a `Free`.
const GRAIN: usize = 16;
/// Grow by at least this many pages at once (1 MiB), so that memory.grow is rare.
const MIN_GROW_PAGES: usize = 16;
/// Address ranges the pre-init heap got from memory.grow; a new one only starts when
/// something else grew memory in between.
const MAX_REGIONS: usize = 16;

/// The header of a free block, in its first bytes: free blocks form a list sorted by address.
#[repr(C)]
struct Free {
    size: usize,
    next: *mut Free,
}

struct State {
    /// Pre-initialising: blocks come from the pre-init heap.
    active: bool,
    /// Pre-initialisation has ended; the pre-init heap takes no more blocks.
    sealed: bool,
    /// The lowest free block. Every byte of a free block is zero except its header.
    head: *mut Free,
    regions: [(usize, usize); MAX_REGIONS],
    region_count: usize,
}

/// The allocator (see the module docs).
pub struct Heap(UnsafeCell<State>);

// SAFETY: a wasm32-wasip2 instance has one thread, and no method calls back into the heap
// while it holds the state.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(State {
    active: false,
    sealed: false,
    head: ptr::null_mut(),
    regions: [(0, 0); MAX_REGIONS],
    region_count: 0,
}));

/// Runs `load` with every block it allocates placed in the pre-init heap, then seals that heap.
/// Only the first call does so; a later one (a host calling `wizer-initialize` again) just runs
/// `load`.
pub fn preinitialise<T>(load: impl FnOnce() -> T) -> T {
    // SAFETY: one thread, and the reference ends before `load` allocates.
    let first = unsafe {
        let state = HEAP.state();
        let first = !state.sealed && !state.active;
        state.active |= first;
        first
    };
    let out = load();
    if first {
        // SAFETY: as above; nothing is allocated while sealing.
        unsafe { HEAP.state().seal() };
    }
    out
}

impl Heap {
    /// # Safety
    /// One caller at a time: the returned reference must end before the heap is entered again.
    #[allow(clippy::mut_from_ref)]
    unsafe fn state(&self) -> &mut State {
        // SAFETY: the caller guarantees exclusive use.
        unsafe { &mut *self.0.get() }
    }
}

/// `size` rounded up to whole grains (at least one).
fn grains(size: usize) -> usize {
    size.max(1).next_multiple_of(GRAIN)
}

impl State {
    fn owns(&self, ptr: *mut u8) -> bool {
        let at = ptr as usize;
        self.regions[..self.region_count].iter().any(|&(start, end)| (start..end).contains(&at))
    }

    /// The lowest free place for `size` bytes (a multiple of `GRAIN`) aligned to `align`.
    unsafe fn take(&mut self, size: usize, align: usize) -> *mut u8 {
        let align = align.max(GRAIN);
        loop {
            let mut prev: *mut Free = ptr::null_mut();
            let mut cur = self.head;
            while !cur.is_null() {
                // SAFETY: `cur` is a free block's header, and the block is `size` bytes.
                unsafe {
                    let start = cur as usize;
                    let end = start + (*cur).size;
                    let at = start.checked_next_multiple_of(align).unwrap_or(usize::MAX);
                    if at <= end && end - at >= size {
                        let next = (*cur).next;
                        // What is left after the block stays free (at least one grain).
                        let after = if end - at > size {
                            let rest = (at + size) as *mut Free;
                            rest.write(Free { size: end - at - size, next });
                            rest
                        } else {
                            next
                        };
                        if at > start {
                            // What is left before it too (alignment); `cur` stays as its header.
                            (*cur).size = at - start;
                            (*cur).next = after;
                        } else {
                            // The block starts at the header: zero it, so the block is all zero.
                            cur.cast::<u8>().write_bytes(0, size_of::<Free>());
                            self.link(prev, after);
                        }
                        return at as *mut u8;
                    }
                    prev = cur;
                    cur = (*cur).next;
                }
            }
            // SAFETY: forwarded.
            if !unsafe { self.grow(size + align) } {
                return ptr::null_mut();
            }
        }
    }

    fn link(&mut self, prev: *mut Free, next: *mut Free) {
        if prev.is_null() {
            self.head = next;
        } else {
            // SAFETY: `prev` is a free block's header.
            unsafe { (*prev).next = next };
        }
    }

    /// Adds at least `bytes` of fresh (zero) pages to the free list.
    unsafe fn grow(&mut self, bytes: usize) -> bool {
        let pages = bytes.div_ceil(PAGE).max(MIN_GROW_PAGES);
        let old = wasm32::memory_grow::<0>(pages);
        if old == usize::MAX {
            return false;
        }
        // The last page of a full 4 GiB memory has no end address in 32 bits: leave it unused.
        let Some(end) = (old + pages).checked_mul(PAGE) else {
            return false;
        };
        let start = old * PAGE;
        match self.regions[..self.region_count].last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ if self.region_count < MAX_REGIONS => {
                self.regions[self.region_count] = (start, end);
                self.region_count += 1;
            }
            // Pages nobody will use; failing the allocation is the honest answer.
            _ => return false,
        }
        // SAFETY: the pages are new, zero and ours.
        unsafe { self.give(start, end - start) };
        true
    }

    /// Returns the zeroed range `[at, at + size)` to the free list, merging it with free
    /// neighbours.
    unsafe fn give(&mut self, at: usize, size: usize) {
        let mut prev: *mut Free = ptr::null_mut();
        let mut next = self.head;
        // SAFETY: every node of the list is a free block's header.
        unsafe {
            while !next.is_null() && (next as usize) < at {
                prev = next;
                next = (*next).next;
            }
            let mut size = size;
            if !next.is_null() && at + size == next as usize {
                size += (*next).size;
                let after = (*next).next;
                // Now inside a bigger free block, so zero like the rest of it.
                next.cast::<u8>().write_bytes(0, size_of::<Free>());
                next = after;
            }
            if !prev.is_null() && prev as usize + (*prev).size == at {
                (*prev).size += size;
                (*prev).next = next;
            } else {
                let node = at as *mut Free;
                node.write(Free { size, next });
                self.link(prev, node);
            }
        }
    }

    /// Ends pre-initialisation: zeroes the free list's headers, so that all free memory is
    /// zero in the snapshot, and drops the list.
    unsafe fn seal(&mut self) {
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: `cur` is a free block's header.
            unsafe {
                let next = (*cur).next;
                cur.cast::<u8>().write_bytes(0, size_of::<Free>());
                cur = next;
            }
        }
        self.head = ptr::null_mut();
        self.active = false;
        self.sealed = true;
    }
}

// SAFETY: a block from `System` goes back to `System` with its layout; a pre-init block is
// `grains(size)` bytes at an address aligned as asked, and goes back to the free list (or is
// left in place once sealed), never to `System`.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the state is used only inside this call.
        unsafe {
            let state = self.state();
            if state.active {
                return state.take(grains(layout.size()), layout.align());
            }
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`; pre-init blocks are handed out zeroed, so `alloc` serves.
        unsafe {
            if self.state().active {
                return self.alloc(layout);
            }
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller gives up the block, which `alloc` made with `layout`.
        unsafe {
            let state = self.state();
            if state.owns(ptr) {
                if state.active {
                    let size = grains(layout.size());
                    ptr.write_bytes(0, size);
                    state.give(ptr as usize, size);
                }
                return;
            }
            if state.active {
                // A block from before pre-initialisation: zero it too, and keep the compiler
                // from dropping the stores as dead before `free`.
                ptr.write_bytes(0, layout.size());
                std::hint::black_box(ptr);
            }
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller gives a block `alloc` made with `layout`, and a valid `new_size`.
        unsafe {
            let state = self.state();
            let owned = state.owns(ptr);
            if !owned && !state.active {
                return System.realloc(ptr, layout, new_size);
            }
            let (old, new) = (grains(layout.size()), grains(new_size));
            if owned && state.active && new <= old {
                // Shrink in place; the cut-off tail goes back to the free list.
                if new < old {
                    ptr.add(new).write_bytes(0, old - new);
                    state.give(ptr as usize + new, old - new);
                }
                return ptr;
            }
            // Otherwise move: into the pre-init heap while pre-initialising, out of it once
            // sealed.
            let moved = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !moved.is_null() {
                ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            moved
        }
    }
}
