//! A stacked LSTM with PyTorch's weight layout, run two ways:
//! - [`Lstm::forward`]: libtorch's fused `lstm` op over whole sequences (training,
//!   batched evaluation; cuDNN on CUDA);
//! - [`Lstm::step`]: a hand-written cell for one time step, which on CPU is several
//!   times faster than the fused op for a single stream (see `fugue bench`).
//!
//! Both read the same parameters, so a model trains with one and generates with the other.

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct Lstm {
    /// Per layer: weight_ih (4H×I), weight_hh (4H×H), bias_ih (4H), bias_hh (4H).
    weights: Vec<[Tensor; 4]>,
    hidden: i64,
}

/// Hidden and cell state, each (layers, batch, hidden).
#[derive(Debug)]
pub struct LstmState {
    pub h: Tensor,
    pub c: Tensor,
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
        Lstm { weights, hidden }
    }

    pub fn layers(&self) -> i64 {
        self.weights.len() as i64
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> LstmState {
        let shape = [self.layers(), batch, self.hidden];
        LstmState {
            h: Tensor::zeros(shape, (Kind::Float, device)),
            c: Tensor::zeros(shape, (Kind::Float, device)),
        }
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
        let params: Vec<&Tensor> = self.weights.iter().flatten().collect();
        let (output, h, c) =
            input.lstm(&[&state.h, &state.c], &params, true, self.layers(), dropout, train, false, true);
        (output, LstmState { h, c })
    }

    /// One time step for a batch of streams, (batch, input) → (batch, hidden).
    pub fn step(&self, input: &Tensor, state: &LstmState) -> (Tensor, LstmState) {
        let mut x = input.shallow_clone();
        let (mut hs, mut cs) =
            (Vec::with_capacity(self.weights.len()), Vec::with_capacity(self.weights.len()));
        for (layer, [w_ih, w_hh, b_ih, b_hh]) in (0i64..).zip(&self.weights) {
            let (h, c) = (state.h.get(layer), state.c.get(layer));
            let gates = x.linear(w_ih, Some(b_ih)) + h.linear(w_hh, Some(b_hh));
            let chunks = gates.chunk(4, 1);
            let (i, f, g, o) =
                (chunks[0].sigmoid(), chunks[1].sigmoid(), chunks[2].tanh(), chunks[3].sigmoid());
            let c = f * c + i * g;
            let h = o * c.tanh();
            x = h.shallow_clone();
            hs.push(h);
            cs.push(c);
        }
        (x, LstmState { h: Tensor::stack(&hs, 0), c: Tensor::stack(&cs, 0) })
    }
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
    }
}
