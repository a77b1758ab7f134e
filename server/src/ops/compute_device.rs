//! The process's compute device: chosen once at start from `--device` / `ALIGNBOX_DEVICE` (resolved to a device
//! that exists), then read by every operation that computes; and how answers are sampled (`--weights`).

use std::sync::OnceLock;

use trainer::{
    device::{Device, DeviceRequest},
    generate::Weights,
};
use types::views::DeviceView;

static DEVICE: OnceLock<Device> = OnceLock::new();
static WEIGHTS: OnceLock<Weights> = OnceLock::new();

/// Makes `weights` how the process samples answers (the first call wins).
pub fn select_weights(weights: Weights) {
    WEIGHTS.get_or_init(|| weights);
}

/// How the process samples answers (`auto` until [`select_weights`] ran).
pub fn weights() -> Weights {
    WEIGHTS.get().copied().unwrap_or_default()
}

/// Resolves `request` and makes it the process's device (the first call wins). Fails when the request names a
/// device that does not exist.
pub fn select(request: DeviceRequest) -> anyhow::Result<Device> {
    let device = request.resolve()?;
    Ok(*DEVICE.get_or_init(|| device))
}

/// The process's device (the CPU until [`select`] ran).
pub fn current() -> Device {
    DEVICE.get().copied().unwrap_or(Device::Cpu)
}

/// The backend behind `device`: `cpu-flex`, `cuda` or `wgpu`.
pub fn backend_name(device: Device) -> &'static str {
    match device {
        Device::Cpu => trainer::backend::name(),
        Device::Cuda(_) => "cuda",
        Device::Vulkan(_) => "wgpu",
    }
}

/// The device with its memory now.
pub fn view() -> DeviceView {
    let device = current();
    let info = device.info();
    let memory_used = match device {
        Device::Cpu => Some((trainer::bench::rss_mb() * 1024.0 * 1024.0) as u64).filter(|&b| b > 0),
        _ => info.memory_total.zip(info.memory_free).map(|(t, f)| t.saturating_sub(f)),
    };
    DeviceView { id: info.id, name: info.name, memory_total: info.memory_total, memory_used }
}
