//! CUDA through cudarc: the driver library is loaded on first use, so a machine without one reports zero
//! devices instead of failing to start.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use cudarc::driver::CudaContext;

use super::DeviceInfo;

/// Whether the driver library (`libcuda.so`, `nvcuda.dll`) can be loaded.
#[allow(unsafe_code)]
fn driver_present() -> bool {
    // SAFETY: this only tries to open the driver library by its known names (dlopen); nothing from it is called.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The number of CUDA devices, or why there are none to count.
pub fn count() -> Result<usize, String> {
    if !driver_present() {
        return Err("the NVIDIA driver (libcuda) is not installed".into());
    }
    CudaContext::device_count().map(|n| n.max(0) as usize).map_err(|e| format!("{e:?}"))
}

/// The driver context of device `index`, made once per process (`/healthz` and `/metrics` read the device's
/// memory on every request; retaining the primary context each time costs a driver round trip).
fn context(index: usize) -> Result<Arc<CudaContext>, String> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    let mut contexts =
        CONTEXTS.get_or_init(Default::default).lock().map_err(|_| "CUDA context cache poisoned")?;
    if let Some(ctx) = contexts.get(&index) {
        return Ok(ctx.clone());
    }
    let ctx = CudaContext::new(index).map_err(|e| format!("{e:?}"))?;
    contexts.insert(index, ctx.clone());
    Ok(ctx)
}

/// Name and memory of device `index` (from the driver; free memory as the driver reports it now).
pub fn info(index: usize) -> DeviceInfo {
    let id = format!("cuda:{index}");
    if count().map_or(true, |n| index >= n) {
        return DeviceInfo { id, name: "unavailable".into(), memory_total: None, memory_free: None };
    }
    match context(index) {
        Ok(ctx) => {
            let (free, total) =
                ctx.mem_get_info().map_or((None, None), |(f, t)| (Some(f as u64), Some(t as u64)));
            DeviceInfo {
                id,
                name: ctx.name().unwrap_or_else(|_| "CUDA device".into()),
                memory_total: total,
                memory_free: free,
            }
        }
        Err(e) => {
            DeviceInfo { id, name: format!("unavailable ({e})"), memory_total: None, memory_free: None }
        }
    }
}
