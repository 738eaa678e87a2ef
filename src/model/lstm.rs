//! A stacked LSTM with PyTorch's weight layout, run two ways:
//! - [`Lstm::forward`]: libtorch's fused `lstm` op over whole sequences (training,
//!   batched evaluation; cuDNN on CUDA);
//! - [`Lstm::step`]: a hand-written cell for one time step, which on CPU is several
//!   times faster than the fused op for a single stream (see `fugue bench`).
//!
//! Both read the same parameters, so a model trains with one and generates with the other.
//! A loaded model steps with [`FrozenLstm`], the same cell on weights laid out once
//! for inference, in fp32 or fp16 ([`WeightFormat`]).

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use super::frozen_affine::FrozenAffine;
use crate::devices::WeightFormat;

#[derive(Debug)]
pub struct Lstm {
    /// Per layer: weight_ih (4H×I), weight_hh (4H×H), bias_ih (4H), bias_hh (4H).
    weights: Vec<[Tensor; 4]>,
    hidden: i64,
    /// DropConnect on the recurrent weights while training (AWD-LSTM's weight drop).
    recurrent_dropout: f64,
}

/// Hidden and cell state, each (layers, batch, hidden).
#[derive(Debug)]
pub struct LstmState {
    pub h: Tensor,
    pub c: Tensor,
}

impl LstmState {
    /// The state of `batch` streams that have read nothing.
    pub fn zeros(layers: i64, batch: i64, hidden: i64, device: tch::Device) -> LstmState {
        let shape = [layers, batch, hidden];
        LstmState {
            h: Tensor::zeros(shape, (Kind::Float, device)),
            c: Tensor::zeros(shape, (Kind::Float, device)),
        }
    }
}

impl Lstm {
    /// PyTorch's initialisation: uniform in ±1/√hidden.
    pub fn new(vs: &Path, input: i64, hidden: i64, layers: i64) -> Lstm {
        let bound = 1.0 / (hidden as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let weights = (0..layers)
            .map(|layer| {
                let input = if layer == 0 { input } else { hidden };
                [
                    vs.var(&format!("weight_ih_l{layer}"), &[4 * hidden, input], init),
                    vs.var(&format!("weight_hh_l{layer}"), &[4 * hidden, hidden], init),
                    vs.var(&format!("bias_ih_l{layer}"), &[4 * hidden], init),
                    vs.var(&format!("bias_hh_l{layer}"), &[4 * hidden], init),
                ]
            })
            .collect();
        Lstm { weights, hidden, recurrent_dropout: 0.0 }
    }

    /// While training, each batch sees the hidden-to-hidden weights with this share
    /// of their entries dropped: one mask for every time step and stream of the
    /// batch, so the regularisation works on the recurrence itself.
    pub fn with_recurrent_dropout(self, p: f64) -> Lstm {
        Lstm { recurrent_dropout: p, ..self }
    }

    pub fn layers(&self) -> i64 {
        self.weights.len() as i64
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> LstmState {
        LstmState::zeros(self.layers(), batch, self.hidden, device)
    }

    /// Runs a batch of sequences, (batch, time, input) → (batch, time, hidden).
    /// `dropout` applies between layers while training.
    pub fn forward(
        &self,
        input: &Tensor,
        state: &LstmState,
        dropout: f64,
        train: bool,
    ) -> (Tensor, LstmState) {
        let drop_recurrent = train && self.recurrent_dropout > 0.0;
        let params: Vec<Tensor> = self
            .weights
            .iter()
            .flat_map(|[w_ih, w_hh, b_ih, b_hh]| {
                let w_hh = if drop_recurrent {
                    w_hh.dropout(self.recurrent_dropout, true)
                } else {
                    w_hh.shallow_clone()
                };
                [w_ih.shallow_clone(), w_hh, b_ih.shallow_clone(), b_hh.shallow_clone()]
            })
            .collect();
        let (output, h, c) = input.lstm(
            &[state.h.shallow_clone(), state.c.shallow_clone()],
            &params,
            true,
            self.layers(),
            dropout,
            train,
            false,
            true,
        );
        (output, LstmState { h, c })
    }

    /// One time step for a batch of streams, (batch, input) → (batch, hidden).
    pub fn step(&self, input: &Tensor, state: &LstmState) -> (Tensor, LstmState) {
        step_layers(input, state, self.weights.len(), |layer, x, h| {
            let [w_ih, w_hh, b_ih, b_hh] = &self.weights[layer];
            x.linear(w_ih, Some(b_ih)) + h.linear(w_hh, Some(b_hh))
        })
    }

    /// A copy of the weights for stepping at inference ([`FrozenLstm`]), kept in
    /// `format`; it does not follow later changes to these.
    pub fn frozen(&self, format: WeightFormat) -> anyhow::Result<FrozenLstm> {
        let layers = self
            .weights
            .iter()
            .map(|[w_ih, w_hh, b_ih, b_hh]| {
                FrozenAffine::new(&Tensor::cat(&[w_ih, w_hh], 1), &(b_ih + b_hh), format)
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(FrozenLstm { layers })
    }
}

/// The LSTM's weights laid out for stepping streams at inference: per layer, one
/// affine map of the input and hidden state side by side to the four gates
/// ([`FrozenAffine`]). A row's bits do not depend on how many rows are stepped with
/// it, at the sizes [`WeightFormat::batch_rows`] gives (see the test), so a stream
/// gives the same notes alone or in a batch.
#[derive(Debug)]
pub struct FrozenLstm {
    layers: Vec<FrozenAffine>,
}

impl FrozenLstm {
    /// One time step for a batch of streams, (batch, input) → (batch, hidden);
    /// the same cell as [`Lstm::step`].
    pub fn step(&self, input: &Tensor, state: &LstmState) -> (Tensor, LstmState) {
        step_layers(input, state, self.layers.len(), |layer, x, h| {
            self.layers[layer].forward(&Tensor::cat(&[x, h], 1))
        })
    }

    /// The format its weights are kept in (every layer's).
    pub fn format(&self) -> WeightFormat {
        self.layers[0].format()
    }
}

/// One time step through `layers` stacked cells, each layer's gate
/// pre-activations (i, f, g, o) from `gates(layer, input, hidden)`.
fn step_layers(
    input: &Tensor,
    state: &LstmState,
    layers: usize,
    gates: impl Fn(usize, &Tensor, &Tensor) -> Tensor,
) -> (Tensor, LstmState) {
    let mut x = input.shallow_clone();
    let (mut hs, mut cs) = (Vec::with_capacity(layers), Vec::with_capacity(layers));
    for layer in 0..layers {
        let (h, c) = (state.h.get(layer as i64), state.c.get(layer as i64));
        let chunks = gates(layer, &x, &h).chunk(4, 1);
        let (i, f, g, o) = (chunks[0].sigmoid(), chunks[1].sigmoid(), chunks[2].tanh(), chunks[3].sigmoid());
        let c = f * c + i * g;
        let h = o * c.tanh();
        x = h.shallow_clone();
        hs.push(h);
        cs.push(c);
    }
    (x, LstmState { h: Tensor::stack(&hs, 0), c: Tensor::stack(&cs, 0) })
}

#[cfg(test)]
mod tests {
    use tch::nn::VarStore;
    use tch::{Device, Kind, Tensor};

    use super::*;

    #[test]
    fn the_hand_written_cell_matches_the_fused_op() {
        tch::manual_seed(7);
        let vs = VarStore::new(Device::Cpu);
        let lstm = Lstm::new(&vs.root(), 5, 8, 2);
        let input = Tensor::randn([3, 6, 5], (Kind::Float, Device::Cpu));
        let (fused, fused_state) = lstm.forward(&input, &lstm.zero_state(3, Device::Cpu), 0.0, false);
        let mut state = lstm.zero_state(3, Device::Cpu);
        let mut stepped = Vec::new();
        for t in 0..6 {
            let (h, next) = lstm.step(&input.select(1, t), &state);
            stepped.push(h);
            state = next;
        }
        let stepped = Tensor::stack(&stepped, 1);
        assert!(fused.allclose(&stepped, 1e-5, 1e-6, false));
        assert!(fused_state.h.allclose(&state.h, 1e-5, 1e-6, false));
        assert!(fused_state.c.allclose(&state.c, 1e-5, 1e-6, false));

        // fp16 weights are rounded once: about 1e-3 of the state at these sizes.
        for (format, tolerance) in [(WeightFormat::Fp32, 1e-5), (WeightFormat::Fp16, 3e-3)] {
            let frozen = lstm.frozen(format).unwrap();
            let mut state = lstm.zero_state(3, Device::Cpu);
            for t in 0..6 {
                let (h, next) = frozen.step(&input.select(1, t), &state);
                assert!(fused.select(1, t).allclose(&h, tolerance, tolerance, false), "{format:?} step {t}");
                state = next;
            }
            assert!(fused_state.c.allclose(&state.c, tolerance, tolerance, false), "{format:?}");
        }
    }

    #[test]
    fn a_frozen_step_gives_a_row_the_same_bits_at_every_batch_size_it_is_stepped_at() {
        // The default model's shape, up to the engine's largest batch (128, padded a
        // little further): at these sizes MKL and fbgemm choose their kernels as they
        // do in service.
        tch::manual_seed(5);
        let vs = VarStore::new(Device::Cpu);
        let lstm = Lstm::new(&vs.root(), 128, 256, 2);
        let inputs = Tensor::randn([136, 128], (Kind::Float, Device::Cpu));
        let state = LstmState {
            h: Tensor::randn([2, 136, 256], (Kind::Float, Device::Cpu)),
            c: Tensor::randn([2, 136, 256], (Kind::Float, Device::Cpu)),
        };
        for format in [WeightFormat::Fp32, WeightFormat::Fp16] {
            let frozen = lstm.frozen(format).unwrap();
            let first_rows = |rows: i64| {
                let state = LstmState { h: state.h.narrow(1, 0, rows), c: state.c.narrow(1, 0, rows) };
                let (h, next) = frozen.step(&inputs.narrow(0, 0, rows), &state);
                (h.get(0), next.c.select(1, 0))
            };
            let (h, c) = first_rows(format.batch_rows(128) as i64);
            for rows in 1..128 {
                let stepped = format.batch_rows(rows) as i64;
                let (h_rows, c_rows) = first_rows(stepped);
                assert!(h_rows.equal(&h) && c_rows.equal(&c), "{format:?}: row 0 differs among {stepped}");
            }
        }
    }

    #[test]
    fn recurrent_dropout_shares_one_mask_across_a_batch_and_is_off_outside_training() {
        tch::manual_seed(11);
        let vs = VarStore::new(Device::Cpu);
        let dropped = Lstm::new(&vs.root(), 5, 8, 2).with_recurrent_dropout(0.5);
        let weights = dropped.weights.iter().map(|layer| layer.each_ref().map(Tensor::shallow_clone));
        let plain = Lstm { weights: weights.collect(), hidden: 8, recurrent_dropout: 0.0 };
        let sequence = Tensor::randn([1, 6, 5], (Kind::Float, Device::Cpu));
        let twice = Tensor::cat(&[&sequence, &sequence], 0);
        let state = plain.zero_state(2, Device::Cpu);

        let (evaluated, _) = dropped.forward(&twice, &state, 0.0, false);
        let (reference, _) = plain.forward(&twice, &state, 0.0, false);
        assert!(evaluated.equal(&reference), "no dropout outside training");

        let (trained, _) = dropped.forward(&twice, &state, 0.0, true);
        assert!(!trained.allclose(&reference, 1e-4, 1e-5, false), "training drops recurrent weights");
        assert!(trained.get(0).equal(&trained.get(1)), "both streams of the batch see the same mask");
    }
}
