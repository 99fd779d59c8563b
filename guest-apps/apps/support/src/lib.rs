//! The runtime pieces every `no_std` guest half needs and `std` would otherwise
//! provide: a global allocator and a panic handler.
//!
//! Both are as small as they can be, because every byte of code ends up in the
//! signed pair that has to fit one QR code:
//!
//! - A half runs one enrollment and is then thrown away, so the allocator is a
//!   bump allocator that never frees. It starts right after the stack and
//!   static data, grows linear memory as needed and returns null when
//!   `memory.grow` fails (the module's maximum is 2 pages), so the allocation
//!   error path traps; the host then fails the enrollment, and commits nothing.
//! - A panic traps at once. The panic message is never looked at, so none of
//!   `core::fmt` is linked in.
//!
//! A guest links this crate with `extern crate support;`.

#![no_std]

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

    /// Never frees: a half allocates a few small buffers per message of a
    /// fixed, short protocol. (Giving back the most recent allocation was tried:
    /// it is inlined at every drop and costs more code than it could ever save.)
    unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}

    // `realloc` is the default: allocate, copy the smaller of the two sizes,
    // free the old block.
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}
