//! The C allocator's settings for training workloads.
//!
//! A training step allocates and frees tensors of a few MiB hundreds of times. glibc's defaults serve each
//! such block with its own `mmap` (or return the top of the heap to the system after every free), so every
//! step pays page faults and zeroing for memory it just gave back: 12–18% of an `rm` step on the 2-core box
//! (docs/BENCHMARKS.md). Raising the thresholds keeps freed blocks for reuse. Peak memory is unchanged;
//! memory freed after a peak is kept by the process until [`release_free_memory`] hands it back (after a model
//! is loaded, after a job).

// The calls into the C library below need `unsafe`; they only change allocator settings or release free pages.
#![allow(unsafe_code)]

/// Blocks up to this size come from the heap (glibc's upper limit for the setting on 64-bit systems).
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of the heap kept instead of returned to the system.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Returns the allocator's free memory to the system (`malloc_trim`): after a model is loaded or quantised
/// (the f32 copies it freed would otherwise stay resident) and after a job ends.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists and returns whole free pages to the system;
    // it takes the allocator's locks and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Applies the settings above; returns whether the allocator took them (only glibc has them).
/// Call it once at start-up, before the first large allocation.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only stores the given values in the allocator's parameters; it is safe to call at
        // any time, from any thread, and returns 0 when it refuses a value.
        unsafe {
            let mmap = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1;
            let trim = libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1;
            mmap && trim
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
