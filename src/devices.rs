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

/// The generation engine's workers when none are configured: every CUDA device;
/// else one CPU worker for each `threads_per_worker` of the `cores` this process
/// may use. A worker steps its batch on one thread and gains little from a second
/// libtorch thread, so on a CPU the cores are used by more workers (README,
/// "Benchmarks": 2,500 listeners on two cores, 454 refused with one worker, none
/// with two).
pub fn default_generation_devices(
    cuda_device_count: usize,
    cores: usize,
    threads_per_worker: usize,
) -> Vec<DeviceName> {
    if cuda_device_count > 0 {
        return default_devices(cuda_device_count);
    }
    vec![DeviceName(Device::Cpu); (cores / threads_per_worker.max(1)).max(1)]
}

/// The cores this process may use (its CPU affinity and cgroup quota), at least one.
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
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

    #[test]
    fn generation_takes_every_gpu_else_a_cpu_worker_per_core_of_its_threads() {
        let cpus = |count| vec![DeviceName(Device::Cpu); count];
        assert_eq!(default_generation_devices(0, 2, 1), cpus(2));
        assert_eq!(default_generation_devices(0, 8, 2), cpus(4));
        assert_eq!(default_generation_devices(0, 3, 2), cpus(1));
        assert_eq!(default_generation_devices(0, 1, 4), cpus(1), "at least one");
        assert_eq!(default_generation_devices(0, 4, 0), cpus(4), "threads below one count as one");
        assert_eq!(
            default_generation_devices(2, 64, 1),
            default_devices(2),
            "GPUs, never CPU workers beside"
        );
    }
}
