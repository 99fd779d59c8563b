//! What `std` would otherwise provide a `no_std` half: a global allocator and
//! a panic handler, both as small as they can be.
//!
//! - A half runs one enrollment and is then thrown away, so the allocator is
//!   a bump allocator that never frees. It starts right after the stack and
//!   static data, grows linear memory as needed and returns null when
//!   `memory.grow` fails (the module's maximum is 2 pages), so the allocation
//!   error path traps; the host then fails the enrollment and commits
//!   nothing.
//! - A panic traps at once. The message is never looked at, so none of
//!   `core::fmt` is linked in.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::ptr::null_mut;

const PAGE: usize = 65536;

unsafe extern "C" {
    /// The first byte after the stack and static data, defined by `wasm-ld`.
    static __heap_base: u8;
}

/// The next free byte; 0 until the first allocation.
static mut NEXT: usize = 0;

struct Bump;

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: wasm32 guests are single-threaded; `__heap_base` is only
        // used for its address.
        unsafe {
            let next = if NEXT == 0 { &raw const __heap_base as usize } else { NEXT };
            let mask = layout.align() - 1;
            let Some(start) = next.checked_add(mask) else { return null_mut() };
            let start = start & !mask;
            let Some(end) = start.checked_add(layout.size()) else { return null_mut() };
            let have = wasm32::memory_size(0);
            let need = end.div_ceil(PAGE);
            if need > have && wasm32::memory_grow(0, need - have) == usize::MAX {
                return null_mut();
            }
            NEXT = end;
            start as *mut u8
        }
    }

    /// Never frees: a half allocates a few small buffers for one short
    /// enrollment. (Giving back the most recent allocation was tried: it is
    /// inlined at every drop and costs more code than it could ever save.)
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    wasm32::unreachable()
}
