//! Out-of-memory fallback: a step that fails to allocate is retried with half the micro-batch (gradient
//! accumulation keeps the effective batch) instead of ending the run.
//!
//! GPU backends report an allocation failure as a panic whose message says so; that panic is caught here. On the
//! CPU, Rust aborts the process when the system allocator fails, so there the planner's estimate
//! ([`crate::memory`]) is what keeps a run inside its budget.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Whether a panic payload reports an allocation failure.
pub fn is_out_of_memory(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
        .to_ascii_lowercase();
    // cubecl (burn-cuda, burn-wgpu) unwraps `IoError::BufferTooBig` ("can't allocate buffer of size: N") when the
    // device's memory pool cannot hold a buffer; CUDA's own error is CUDA_ERROR_OUT_OF_MEMORY.
    [
        "out of memory",
        "outofmemory",
        "out_of_memory",
        "memory allocation",
        "failed to allocate",
        "can't allocate buffer",
        "buffertoobig",
    ]
    .iter()
    .any(|k| text.contains(k))
}

/// Runs `attempt(micro_batch)`; when it panics with an allocation failure and the micro-batch is above 1, halves
/// `micro_batch` (reported through `on_halve`) and tries again. Other panics propagate unchanged.
pub fn with_fallback<T>(
    micro_batch: &mut usize,
    mut attempt: impl FnMut(usize) -> T,
    mut on_halve: impl FnMut(usize, usize),
) -> T {
    loop {
        match catch_unwind(AssertUnwindSafe(|| attempt(*micro_batch))) {
            Ok(v) => return v,
            Err(p) if *micro_batch > 1 && is_out_of_memory(p.as_ref()) => {
                let old = *micro_batch;
                *micro_batch = old.div_ceil(2).min(old - 1);
                on_halve(old, *micro_batch);
            }
            Err(p) => resume_unwind(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_failure_halves_the_micro_batch_until_the_step_fits() {
        let mut mb = 16;
        let mut halvings = Vec::new();
        let tried = std::cell::RefCell::new(Vec::new());
        let out = with_fallback(
            &mut mb,
            |m| {
                tried.borrow_mut().push(m);
                if m > 3 {
                    panic!("CUDA error: out of memory (tried to allocate {} MiB)", m * 100);
                }
                m * 10
            },
            |a, b| halvings.push((a, b)),
        );
        assert_eq!(out, 20);
        assert_eq!(mb, 2);
        assert_eq!(*tried.borrow(), vec![16, 8, 4, 2]);
        assert_eq!(halvings, vec![(16, 8), (8, 4), (4, 2)]);
    }

    #[test]
    fn the_gpu_backends_allocation_failures_are_recognised() {
        let cubecl: Box<dyn std::any::Any + Send> = Box::new(
            "called `Result::unwrap()` on an `Err` value: can't allocate buffer of size: 8589934592"
                .to_string(),
        );
        assert!(is_out_of_memory(cubecl.as_ref()));
        let debug: Box<dyn std::any::Any + Send> = Box::new("BufferTooBig { size: 1 }".to_string());
        assert!(is_out_of_memory(debug.as_ref()));
        let cuda: Box<dyn std::any::Any + Send> =
            Box::new("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")");
        assert!(is_out_of_memory(cuda.as_ref()));
        let other: Box<dyn std::any::Any + Send> = Box::new("index out of bounds".to_string());
        assert!(!is_out_of_memory(other.as_ref()));
    }

    #[test]
    fn other_panics_are_not_swallowed() {
        let mut mb = 8;
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_fallback(&mut mb, |_| -> () { panic!("index out of bounds") }, |_, _| {})
        }));
        assert!(r.is_err());
        assert_eq!(mb, 8);
    }
}
