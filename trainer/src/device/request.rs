//! What the user asked for (`--device`, `ALIGNBOX_DEVICE`) and its resolution to a device that exists.

use std::str::FromStr;

use super::{cuda, vulkan, Device};

/// Why a device request cannot be met.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The text is not a device.
    #[error("--device {0:?}: expected auto, cpu, cuda[:N] or vulkan[:N]")]
    Parse(String),
    /// CUDA was asked for and the driver cannot be loaded or has no such device.
    #[error("--device cuda:{index}: {reason}")]
    Cuda {
        /// The device asked for.
        index: usize,
        /// What the driver said.
        reason: String,
    },
    /// Vulkan was asked for and there is no such adapter.
    #[error("--device vulkan:{index}: {reason}")]
    Vulkan {
        /// The adapter asked for.
        index: usize,
        /// What the loader said.
        reason: String,
    },
}

/// A device as asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceRequest {
    /// A CUDA device when the driver loads and has one, else the CPU (never a software Vulkan device).
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
    /// Vulkan adapter N.
    Vulkan(usize),
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let bad = || DeviceError::Parse(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let (kind, index) = match t.split_once(':') {
            Some((k, i)) => (k.to_string(), Some(i.parse::<usize>().map_err(|_| bad())?)),
            None => (t.clone(), None),
        };
        Ok(match (kind.as_str(), index) {
            ("auto", None) => DeviceRequest::Auto,
            ("cpu", None) => DeviceRequest::Cpu,
            ("cuda" | "gpu", i) => DeviceRequest::Cuda(i.unwrap_or(0)),
            ("vulkan" | "wgpu", i) => DeviceRequest::Vulkan(i.unwrap_or(0)),
            _ => return Err(bad()),
        })
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceRequest::Auto => write!(f, "auto"),
            DeviceRequest::Cpu => write!(f, "cpu"),
            DeviceRequest::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceRequest::Vulkan(i) => write!(f, "vulkan:{i}"),
        }
    }
}

impl DeviceRequest {
    /// The device this request names, checked to exist. `auto` takes CUDA device 0 when the driver loads and
    /// reports a device, else the CPU.
    pub fn resolve(self) -> Result<Device, DeviceError> {
        match self {
            DeviceRequest::Cpu => Ok(Device::Cpu),
            DeviceRequest::Auto => {
                Ok(if cuda::count().unwrap_or(0) > 0 { Device::Cuda(0) } else { Device::Cpu })
            }
            DeviceRequest::Cuda(index) => {
                let n = cuda::count().map_err(|reason| DeviceError::Cuda { index, reason })?;
                if index >= n {
                    let reason = format!("the driver reports {n} device(s)");
                    return Err(DeviceError::Cuda { index, reason });
                }
                Ok(Device::Cuda(index))
            }
            DeviceRequest::Vulkan(index) => {
                let adapters = vulkan::adapters();
                if index >= adapters.len() {
                    let reason = if adapters.is_empty() {
                        "no Vulkan adapter (install a driver; on Debian `mesa-vulkan-drivers` gives lavapipe)"
                            .into()
                    } else {
                        format!(
                            "{} adapter(s): {}",
                            adapters.len(),
                            adapters.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    };
                    return Err(DeviceError::Vulkan { index, reason });
                }
                Ok(Device::Vulkan(index))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print_back() {
        for (text, want) in [
            ("auto", DeviceRequest::Auto),
            ("CPU", DeviceRequest::Cpu),
            ("cuda", DeviceRequest::Cuda(0)),
            ("cuda:1", DeviceRequest::Cuda(1)),
            ("vulkan:0", DeviceRequest::Vulkan(0)),
            ("wgpu", DeviceRequest::Vulkan(0)),
        ] {
            assert_eq!(text.parse::<DeviceRequest>().unwrap(), want, "{text}");
        }
        assert_eq!(DeviceRequest::Cuda(2).to_string(), "cuda:2");
        for bad in ["", "tpu", "cuda:x", "cpu:1", "auto:0", "vulkan:-1"] {
            let err = bad.parse::<DeviceRequest>().unwrap_err().to_string();
            assert!(err.contains("expected auto, cpu, cuda[:N] or vulkan[:N]"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_cpu_resolves_everywhere_and_auto_never_picks_vulkan() {
        assert_eq!(DeviceRequest::Cpu.resolve().unwrap(), Device::Cpu);
        assert!(matches!(DeviceRequest::Auto.resolve().unwrap(), Device::Cpu | Device::Cuda(0)));
        let err = DeviceRequest::Vulkan(99).resolve().unwrap_err().to_string();
        assert!(err.starts_with("--device vulkan:99: "), "{err}");
    }
}
