//! Compute devices: what libtorch sees, how a device is named in config, and
//! the format a device keeps generation weights in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Device;
use utoipa::ToSchema;

/// A device as written in config and shown in the API: `cpu` or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceName(pub Device);

impl FromStr for DeviceName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "cpu" => Ok(DeviceName(Device::Cpu)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|index| index.parse::<usize>().ok())
                .map(|index| DeviceName(Device::Cuda(index)))
                .ok_or_else(|| format!("unknown device `{other}` (expected `cpu` or `cuda:N`)")),
        }
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Device::Cuda(index) => write!(f, "cuda:{index}"),
            _ => f.write_str("cpu"),
        }
    }
}

/// What this process can compute on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceReport {
    /// Devices work is placed on by default: every CUDA device, else the CPU.
    #[schema(example = json!(["cpu"]))]
    pub devices: Vec<String>,
    /// Number of CUDA devices libtorch sees.
    pub cuda_device_count: usize,
    /// Whether `libtorch_cuda.so` is loaded into this process. When it is not, CUDA
    /// devices can never be seen, whatever the machine has.
    pub cuda_library_loaded: bool,
}

impl DeviceReport {
    pub fn probe() -> DeviceReport {
        let cuda_device_count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        DeviceReport {
            devices: default_devices(cuda_device_count).iter().map(ToString::to_string).collect(),
            cuda_device_count,
            cuda_library_loaded: cuda_library_loaded(),
        }
    }
}

/// Every CUDA device, or the CPU when there is none.
pub fn default_devices(cuda_device_count: usize) -> Vec<DeviceName> {
    if cuda_device_count == 0 {
        vec![DeviceName(Device::Cpu)]
    } else {
        (0..cuda_device_count).map(|index| DeviceName(Device::Cuda(index))).collect()
    }
}

/// Reads this process's memory map: the dynamic linker's own word on what is loaded.
fn cuda_library_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libtorch_cuda.so"))
}

/// How a loaded model keeps its weights for generation; fp16 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// fp32, stored transposed and contiguous: MKL's product on a CPU, cuBLAS on CUDA.
    Fp32,
    /// fp16, packed once by fbgemm; the sums stay fp32. CPU only (x86 with AVX2):
    /// elsewhere the weights stay fp32.
    #[default]
    Fp16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for text in ["cpu", "cuda:0", "cuda:3"] {
            assert_eq!(text.parse::<DeviceName>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_device_names_are_refused() {
        for text in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let error = text.parse::<DeviceName>().unwrap_err();
            assert!(error.contains("expected `cpu` or `cuda:N`"), "{text}: {error}");
        }
    }

    #[test]
    fn cpu_is_the_default_without_cuda() {
        assert_eq!(default_devices(0), vec![DeviceName(Device::Cpu)]);
        assert_eq!(default_devices(2), vec![DeviceName(Device::Cuda(0)), DeviceName(Device::Cuda(1))]);
    }
}
