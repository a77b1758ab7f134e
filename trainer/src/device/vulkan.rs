//! Vulkan (or the platform's wgpu API) adapters: their listing, their burn devices and their limits.

use burn::backend::wgpu::WgpuDevice;

use super::DeviceInfo;

/// One adapter as the loader lists it.
#[derive(Clone, Debug)]
pub struct Adapter {
    /// Its name (`llvmpipe (LLVM 15.0.6, 256 bits)`, `NVIDIA H200`).
    pub name: String,
    /// Its kind.
    pub kind: wgpu::DeviceType,
    /// Its largest buffer in bytes.
    pub max_buffer: u64,
}

/// Every adapter of the platform's primary API, in the loader's order (listed once per process: `/healthz` and
/// `/metrics` read it on every request, and creating a wgpu instance each time is slow).
pub fn adapters() -> Vec<Adapter> {
    static ADAPTERS: std::sync::OnceLock<Vec<Adapter>> = std::sync::OnceLock::new();
    ADAPTERS.get_or_init(list).clone()
}

fn list() -> Vec<Adapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let listed = block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    listed
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            Adapter { name: info.name, kind: info.device_type, max_buffer: a.limits().max_buffer_size }
        })
        .collect()
}

/// Polls `f` to completion on this thread (wgpu's native listing is ready at once; this only unwraps it).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// burn's device for adapter `index`: its kind and its position among the adapters of that kind.
pub fn burn_device(index: usize) -> WgpuDevice {
    let all = adapters();
    let Some(me) = all.get(index) else { return WgpuDevice::DefaultDevice };
    let nth = all[..index].iter().filter(|a| a.kind == me.kind).count();
    match me.kind {
        wgpu::DeviceType::DiscreteGpu => WgpuDevice::DiscreteGpu(nth),
        wgpu::DeviceType::IntegratedGpu => WgpuDevice::IntegratedGpu(nth),
        wgpu::DeviceType::VirtualGpu => WgpuDevice::VirtualGpu(nth),
        wgpu::DeviceType::Cpu => WgpuDevice::Cpu,
        wgpu::DeviceType::Other => WgpuDevice::DefaultDevice,
    }
}

/// Name and memory of adapter `index`. A CPU adapter (lavapipe) allocates host memory, so it reports the host's;
/// for a GPU wgpu reports no free memory, only the largest buffer (a lower bound of the total).
pub fn info(index: usize) -> DeviceInfo {
    let id = format!("vulkan:{index}");
    match adapters().into_iter().nth(index) {
        Some(a) if a.kind == wgpu::DeviceType::Cpu => {
            let (memory_total, memory_free) = super::host_memory();
            DeviceInfo { id, name: a.name, memory_total, memory_free }
        }
        Some(a) => DeviceInfo { id, name: a.name, memory_total: Some(a.max_buffer), memory_free: None },
        None => DeviceInfo { id, name: "unavailable".into(), memory_total: None, memory_free: None },
    }
}
