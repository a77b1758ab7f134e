//! The compute device, chosen at run time: the CPU (burn-flex with the fused kernels), a CUDA device
//! (burn-cuda; the driver is loaded when first asked for, so the binary starts where there is none) or a Vulkan
//! adapter (burn-wgpu; Metal or DX12 where the platform has those instead).
//!
//! A command parses what the user asked for ([`DeviceRequest`]: `auto`, `cpu`, `cuda[:N]`, `vulkan[:N]`) once,
//! resolves it to a [`Device`] that exists, and hands that to the trainer; the trainer stays generic over
//! `Backend`, and [`with_backend!`](crate::with_backend) is the one `match` that picks the concrete backend at the
//! entry of a stage or an operation.

mod cuda;
mod request;
mod vulkan;

use serde::{Deserialize, Serialize};

pub use request::{DeviceError, DeviceRequest};

/// The CPU backend (burn-flex; the fused kernels run on it).
pub type Cpu = burn::backend::Flex<f32>;
/// The CUDA backend.
pub type Cuda = burn::backend::Cuda<f32, i32>;
/// The wgpu backend (Vulkan on Linux, Metal on macOS, DX12 on Windows), WGSL shaders.
pub type Vulkan = burn::backend::Wgpu<f32, i32>;

/// A device that exists on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// The CPU.
    Cpu,
    /// CUDA device N (the driver's numbering).
    Cuda(usize),
    /// Vulkan adapter N (the order the loader lists them, as `vulkaninfo` does).
    Vulkan(usize),
}

impl Device {
    /// The burn device of the CUDA backend.
    pub fn cuda(index: usize) -> burn::tensor::Device<Cuda> {
        burn::backend::cuda::CudaDevice::new(index)
    }

    /// The burn device of the wgpu backend for adapter `index`.
    pub fn vulkan(index: usize) -> burn::tensor::Device<Vulkan> {
        vulkan::burn_device(index)
    }

    /// What the device is and how much memory it has.
    pub fn info(&self) -> DeviceInfo {
        match *self {
            Device::Cpu => cpu_info(),
            Device::Cuda(i) => cuda::info(i),
            Device::Vulkan(i) => vulkan::info(i),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
            Device::Vulkan(i) => write!(f, "vulkan:{i}"),
        }
    }
}

/// A device's name and memory, for logs, `/healthz`, `/metrics`, the dashboard and the memory planner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `cpu`, `cuda:0`, `vulkan:0`.
    pub id: String,
    /// The hardware's name (`NVIDIA H200`, `llvmpipe (LLVM 15.0.6, 256 bits)`, the CPU model).
    pub name: String,
    /// Memory the device has, in bytes (CUDA: the driver's total; Vulkan on a GPU: the adapter's largest buffer,
    /// a lower bound; CPU and lavapipe: MemTotal), when known.
    pub memory_total: Option<u64>,
    /// Memory free for new allocations, in bytes (CUDA: the driver's free; CPU and lavapipe: MemAvailable), when
    /// known (wgpu reports none for a GPU).
    pub memory_free: Option<u64>,
}

fn cpu_info() -> DeviceInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let (memory_total, memory_free) = host_memory();
    DeviceInfo { id: "cpu".into(), name, memory_total, memory_free }
}

/// The host's memory in bytes: Linux `MemTotal` and `MemAvailable`, when `/proc/meminfo` has them.
pub(crate) fn host_memory() -> (Option<u64>, Option<u64>) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |key: &str| {
        meminfo.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kb| kb * 1024)
        })
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Runs `$body` with the type alias `$B` set to the inference backend of `$device` (a [`Device`]) and `$dev`
/// bound to a reference to its burn device: the one place where a run-time device becomes a backend type.
///
/// ```ignore
/// trainer::with_backend!(device, B, dev => generate_on::<B>(&args, dev))
/// ```
#[macro_export]
macro_rules! with_backend {
    ($device:expr, $B:ident, $dev:ident => $body:expr) => {{
        match $device {
            $crate::device::Device::Cpu => {
                type $B = $crate::device::Cpu;
                let __device: $crate::burn::tensor::Device<$B> = Default::default();
                let $dev = &__device;
                $body
            }
            $crate::device::Device::Cuda(i) => {
                type $B = $crate::device::Cuda;
                let __device = $crate::device::Device::cuda(i);
                let $dev = &__device;
                $body
            }
            $crate::device::Device::Vulkan(i) => {
                type $B = $crate::device::Vulkan;
                let __device = $crate::device::Device::vulkan(i);
                let $dev = &__device;
                $body
            }
        }
    }};
}
