//! A dense layer's weights laid out once for stepping streams at inference, in
//! the format the serving configuration asks for ([`WeightFormat`]).

use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use super::fp16_gemm;
use crate::devices::WeightFormat;

// The setting itself lives with the devices (config reads it); what each
// format needs of the machine is found here, beside the product that uses it.
impl WeightFormat {
    /// This format where it can run on `device`, else fp32.
    pub fn on(self, device: Device) -> WeightFormat {
        match self {
            WeightFormat::Fp16 if device == Device::Cpu && self.stable_rows().is_some() => WeightFormat::Fp16,
            _ => WeightFormat::Fp32,
        }
    }

    /// How many rows a batch of `rows` streams is stepped as: a row gets the same
    /// bits at every size this gives, so a stream's notes do not depend on who else
    /// is playing. Padding rows are zeros whose outputs go unused.
    pub fn batch_rows(self, rows: usize) -> usize {
        self.stable_rows().and_then(|stable| stable.padded(rows)).unwrap_or(rows)
    }

    /// The batch sizes at which this format's product gives each row the bits it
    /// gets at every other such size. The libraries choose their kernels by the
    /// number of rows and by the CPU: MKL computes fewer than 2 rows another way
    /// on one machine, fewer than 4 on another; fbgemm, a remainder of 1 or 2 rows
    /// past its blocks. So they are found once per process, on this CPU; `None`
    /// where the format cannot run here.
    fn stable_rows(self) -> Option<&'static StableRows> {
        static FP32: OnceLock<Option<StableRows>> = OnceLock::new();
        static FP16: OnceLock<Option<StableRows>> = OnceLock::new();
        let probed = match self {
            WeightFormat::Fp32 => &FP32,
            WeightFormat::Fp16 => &FP16,
        };
        probed.get_or_init(|| StableRows::probe(self).ok().flatten()).as_ref()
    }
}

/// The largest batch whose padding [`WeightFormat::batch_rows`] knows.
pub const PROBED_ROWS: usize = 256;

#[derive(Debug)]
struct StableRows {
    stable: Vec<bool>,
}

impl StableRows {
    /// Steps a random layer at every size and compares each size's rows with the
    /// same rows of a larger batch, whose first rows fill whole kernels.
    fn probe(format: WeightFormat) -> anyhow::Result<Option<StableRows>> {
        let _no_grad = tch::no_grad_guard();
        let options = (Kind::Float, Device::Cpu);
        let (inputs, outputs) = (128, 256);
        let layer = FrozenAffine::new(
            &Tensor::randn([outputs, inputs], options),
            &Tensor::randn([outputs], options),
            format,
        )?;
        let rows = Tensor::randn([PROBED_ROWS as i64 + 16, inputs], options);
        let reference = layer.try_forward(&rows)?;
        let mut stable = vec![false; PROBED_ROWS + 1];
        for (size, stable) in stable.iter_mut().enumerate().skip(1) {
            let first = |of: &Tensor| of.narrow(0, 0, size as i64);
            *stable = layer.try_forward(&first(&rows))?.equal(&first(&reference));
        }
        let found = StableRows { stable };
        // Every batch the engine steps must have a stable size a few rows above it.
        Ok((1..=PROBED_ROWS - 8)
            .all(|rows| found.padded(rows).is_some_and(|size| size < rows + 8))
            .then_some(found))
    }

    /// The smallest stable size of at least `rows` rows.
    fn padded(&self, rows: usize) -> Option<usize> {
        (rows.max(1)..=PROBED_ROWS).find(|&size| self.stable[size])
    }
}

/// x (rows × in) → x·Wᵀ + b (rows × out), with W kept in one [`WeightFormat`].
#[derive(Debug)]
pub struct FrozenAffine {
    weights: Weights,
    bias: Tensor,
}

#[derive(Debug)]
enum Weights {
    /// (in × out), contiguous: small batches skip the copy that packing
    /// transposed weights costs.
    Fp32 {
        transposed: Tensor,
    },
    Fp16 {
        packed: Tensor,
    },
}

impl FrozenAffine {
    /// `weight` (out × in, as a dense layer stores it) and `bias` (out), copied:
    /// the layer does not follow later changes to them. `format` must be one that
    /// runs on their device ([`WeightFormat::on`]).
    pub fn new(weight: &Tensor, bias: &Tensor, format: WeightFormat) -> anyhow::Result<FrozenAffine> {
        let weights = match format {
            WeightFormat::Fp32 => Weights::Fp32 { transposed: weight.tr().contiguous().detach() },
            WeightFormat::Fp16 => Weights::Fp16 { packed: fp16_gemm::pack(&weight.detach())? },
        };
        Ok(FrozenAffine { weights, bias: bias.detach().copy() })
    }

    /// The format its weights are kept in.
    pub fn format(&self) -> WeightFormat {
        match self.weights {
            Weights::Fp32 { .. } => WeightFormat::Fp32,
            Weights::Fp16 { .. } => WeightFormat::Fp16,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        // As tch's own ops do, a failure (a shape that does not fit: a bug) panics.
        self.try_forward(x).unwrap_or_else(|error| panic!("{error:#}"))
    }

    fn try_forward(&self, x: &Tensor) -> anyhow::Result<Tensor> {
        match &self.weights {
            Weights::Fp32 { transposed } => Ok(self.bias.f_addmm(x, transposed)?),
            Weights::Fp16 { packed } => fp16_gemm::affine(x, packed, &self.bias),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_has_a_stable_size_at_most_a_few_rows_above_it() {
        for format in [WeightFormat::Fp32, WeightFormat::Fp16] {
            assert!(format.stable_rows().is_some(), "{format:?} runs on the test machines");
            for rows in 1..=128 {
                let padded = format.batch_rows(rows);
                assert!((rows..rows + 8).contains(&padded), "{format:?}: {rows} rows pad to {padded}");
            }
        }
    }
}
