//! The commands that run outside the server: train, generate, eval, and tokens.

mod corpus;
mod eval;
mod generate;
mod tokens;
mod train;

use tch::Device;

pub use self::eval::eval;
pub use self::generate::generate;
pub use self::tokens::tokens;
pub use self::train::train;
use crate::config::TorchArgs;
use crate::devices::default_devices;

impl TorchArgs {
    /// Sets the thread count and returns the device to use.
    pub(crate) fn apply(&self) -> Device {
        tch::set_num_threads(self.threads.max(1));
        let cuda = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        self.device.unwrap_or_else(|| default_devices(cuda)[0]).0
    }
}
