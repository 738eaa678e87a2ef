//! The piano-roll network: 88-key frames in, the next frame's 88 keys out.
//!
//! Two output layers:
//! - `independent`: 88 sigmoids, each key on its own given the LSTM state (the
//!   benchmark's "LSTM" row);
//! - `nade`: an autoregressive NADE over the keys, low to high, conditioned on the
//!   LSTM state (Boulanger-Lewandowski et al.'s RNN-NADE): each key also sees the
//!   keys below it in the same frame, so chords are modelled jointly.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use super::lstm::{Lstm, LstmState};
use super::sampling::{Rng, draw_keys};
use crate::repr::pianoroll::KEYS;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RollOutput {
    Independent,
    Nade { hidden: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollNetConfig {
    pub hidden: i64,
    pub layers: i64,
    /// Dropout on the LSTM's input, between its layers and on its output.
    pub dropout: f64,
    /// DropConnect on the LSTM's recurrent weights while training.
    #[serde(default)]
    pub recurrent_dropout: f64,
    /// Besides the keys, the LSTM reads the frame's position in a cycle of this many
    /// frames (one-hot; 0 for none). Chorale phrases make the position telling: in
    /// the training split a chord is held into the 8th frame of a 2-bar cycle four
    /// times as often as into the 5th.
    #[serde(default)]
    pub position_period: i64,
    /// Besides the keys, the LSTM reads how far its sequence was transposed, as a
    /// pitch class (one-hot). Training moves copies of the pieces by random shifts
    /// and says by how much, so the model learns what transposition keeps without
    /// mistaking a moved piece for one written in that key. Scoring and generation
    /// read shift 0: the corpus's own keys, so the benchmark score stays the exact
    /// likelihood of the music as written.
    #[serde(default)]
    pub key_input: bool,
    pub output: RollOutput,
}

pub struct RollNet {
    config: RollNetConfig,
    lstm: Lstm,
    head: Head,
}

enum Head {
    Independent(nn::Linear),
    Nade(Nade),
}

/// NADE parameters: per key, input weights `w` and output weights `v` into a hidden
/// layer whose bias (`c`) and the keys' biases (`b`) come from the LSTM state.
struct Nade {
    w: Tensor,
    v: Tensor,
    c: nn::Linear,
    b: nn::Linear,
}

/// The shift input's width: transpositions by pitch class.
const PITCH_CLASSES: i64 = 12;

/// The NADE's per-key hidden layer takes frames × 88 × hidden floats per tensor,
/// and training makes several such tensors each step (108 MB each for 8 sequences
/// of 256 16th-note frames and 150 units). Allocations that large are mapped
/// fresh from the kernel and unmapped again every step, and each new page faults
/// when first touched: the kernel's time exceeded the arithmetic's. Computed in
/// slices of frames, no such tensor is larger than this (19 frames at 150 units),
/// the allocator reuses its memory step after step, and the slices stay in cache
/// (`fugue bench train --head nade`: 1 MiB beat 4 and 16 MiB).
const NADE_SLICE_BYTES: i64 = 1 << 20;

impl Nade {
    /// Logits of each key of `targets` (frames, 88) given the LSTM state `hidden`
    /// (frames, units) and the keys below it.
    fn logits(&self, hidden: &Tensor, targets: &Tensor) -> Tensor {
        // a_k = c + Σ_{j<k} x_j W_j, via an exclusive cumulative sum over keys.
        let contributions = targets.unsqueeze(2) * self.w.unsqueeze(0);
        let before = contributions.cumsum(1, Kind::Float) - &contributions;
        let activations = (self.c.forward(hidden).unsqueeze(1) + before).sigmoid();
        self.b.forward(hidden) + (activations * self.v.unsqueeze(0)).sum_dim_intlist(2, false, Kind::Float)
    }
}

impl RollNetConfig {
    /// A network without dropout or position inputs.
    pub fn plain(hidden: i64, layers: i64, output: RollOutput) -> RollNetConfig {
        RollNetConfig {
            hidden,
            layers,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            position_period: 0,
            key_input: false,
            output,
        }
    }
}

impl RollNet {
    pub fn new(vs: &Path, config: RollNetConfig) -> RollNet {
        let shift_inputs = if config.key_input { PITCH_CLASSES } else { 0 };
        let inputs = KEYS as i64 + config.position_period + shift_inputs;
        let lstm = Lstm::new(&(vs / "lstm"), inputs, config.hidden, config.layers)
            .with_recurrent_dropout(config.recurrent_dropout);
        let head = match config.output {
            RollOutput::Independent => {
                Head::Independent(nn::linear(vs / "out", config.hidden, KEYS as i64, Default::default()))
            }
            RollOutput::Nade { hidden } => {
                let nade = vs / "nade";
                let init = nn::Init::Randn { mean: 0.0, stdev: 0.01 };
                Head::Nade(Nade {
                    w: nade.var("w", &[KEYS as i64, hidden], init),
                    v: nade.var("v", &[KEYS as i64, hidden], init),
                    c: nn::linear(&nade / "c", config.hidden, hidden, Default::default()),
                    b: nn::linear(&nade / "b", config.hidden, KEYS as i64, Default::default()),
                })
            }
        };
        RollNet { config, lstm, head }
    }

    pub fn config(&self) -> &RollNetConfig {
        &self.config
    }

    /// Summed negative log-likelihood (nats) of each sequence's frames 2..T given
    /// the frames before them, and the number of frames predicted.
    ///
    /// `frames`: (batch, time, 88) zeros and ones; `lengths`: frames per sequence;
    /// `shifts`: semitones each sequence was transposed by (read with `key_input`).
    pub fn nll(&self, frames: &Tensor, lengths: &[i64], shifts: &[i64], train: bool) -> (Tensor, i64) {
        let (batch, time) = (frames.size()[0], frames.size()[1]);
        let device = frames.device();
        let keys = frames.narrow(1, 0, time - 1).dropout(self.config.dropout, train);
        let inputs = self.inputs(&keys, 0, shifts);
        let state = self.lstm.zero_state(batch, device);
        let (hidden, _) = self.lstm.forward(&inputs, &state, self.config.dropout, train);
        let hidden = hidden.dropout(self.config.dropout, train);
        let targets = frames.narrow(1, 1, time - 1);
        // Only real frames count: frame t+1 exists when t + 1 < length.
        let steps = Tensor::arange(time - 1, (Kind::Int64, device)).unsqueeze(0);
        let limits = Tensor::from_slice(lengths).to_device(device).unsqueeze(1) - 1;
        let mask = steps.lt_tensor(&limits);
        let hidden = hidden.index(&[Some(&mask)]);
        let targets = targets.index(&[Some(&mask)]);
        let logits = self.logits(&hidden, &targets);
        let nll =
            logits.binary_cross_entropy_with_logits::<Tensor>(&targets, None, None, tch::Reduction::Sum);
        (nll, hidden.size()[0])
    }

    /// What the LSTM reads: the keys (batch, time, 88) of frames numbered from
    /// `first`, then each frame's one-hot position when there is a period, then its
    /// sequence's one-hot shift (of `shifts`, one per sequence) with `key_input`.
    fn inputs(&self, keys: &Tensor, first: i64, shifts: &[i64]) -> Tensor {
        let (batch, time) = (keys.size()[0], keys.size()[1]);
        let mut inputs = vec![keys.shallow_clone()];
        let period = self.config.position_period;
        if period > 0 {
            let positions = Tensor::arange_start(first, first + time, (Kind::Int64, keys.device()));
            let one_hot = positions.remainder(period).one_hot(period).to_kind(keys.kind());
            inputs.push(one_hot.unsqueeze(0).expand([batch, time, period], false));
        }
        if self.config.key_input {
            let shifts = Tensor::from_slice(shifts).to_device(keys.device());
            let one_hot = shifts.remainder(PITCH_CLASSES).one_hot(PITCH_CLASSES).to_kind(keys.kind());
            inputs.push(one_hot.unsqueeze(1).expand([batch, time, PITCH_CLASSES], false));
        }
        Tensor::cat(&inputs, 2)
    }

    /// Logits of each key given the LSTM state and, for NADE, the keys below it.
    fn logits(&self, hidden: &Tensor, targets: &Tensor) -> Tensor {
        match &self.head {
            Head::Independent(out) => out.forward(hidden),
            Head::Nade(nade) => {
                // In slices of frames: see NADE_SLICE_BYTES.
                let (frames, units) = (hidden.size()[0], nade.w.size()[1]);
                let slice = (NADE_SLICE_BYTES / (KEYS as i64 * units * 4)).max(1);
                let slices: Vec<Tensor> = (0..frames)
                    .step_by(slice as usize)
                    .map(|first| {
                        let n = slice.min(frames - first);
                        nade.logits(&hidden.narrow(0, first, n), &targets.narrow(0, first, n))
                    })
                    .collect();
                Tensor::cat(&slices, 0)
            }
        }
    }

    /// One step of generation: feeds `frame` (1, 88), the sequence's frame number
    /// `position`, and samples the next frame, every key drawn from the stream's own
    /// generator.
    pub fn sample_next(
        &self,
        frame: &Tensor,
        position: i64,
        state: &LstmState,
        temperature: f64,
        rng: &mut Rng,
    ) -> (Tensor, LstmState) {
        let (hidden, state) = self.step(frame, position, state);
        let next = match &self.head {
            Head::Independent(out) => draw_keys(&(out.forward(&hidden) / temperature).sigmoid(), rng),
            Head::Nade(nade) => {
                let mut activation = nade.c.forward(&hidden);
                let biases = nade.b.forward(&hidden);
                let mut keys = Vec::with_capacity(KEYS);
                for key in 0..KEYS as i64 {
                    let h = activation.sigmoid();
                    let logit =
                        biases.select(1, key) + (h * nade.v.get(key)).sum_dim_intlist(1, false, Kind::Float);
                    let on = draw_keys(&(logit / temperature).sigmoid(), rng);
                    activation += on.unsqueeze(1) * nade.w.get(key).unsqueeze(0);
                    keys.push(on);
                }
                Tensor::stack(&keys, 1)
            }
        };
        (next, state)
    }

    /// Feeds one frame (batch, 88) at frame number `position`: the LSTM's output and
    /// next state, as training sees that frame of an untransposed sequence.
    fn step(&self, frame: &Tensor, position: i64, state: &LstmState) -> (Tensor, LstmState) {
        let unshifted = vec![0; frame.size()[0] as usize];
        let input = self.inputs(&frame.unsqueeze(1), position, &unshifted).squeeze_dim(1);
        self.lstm.step(&input, state)
    }

    pub fn zero_state(&self, device: tch::Device) -> LstmState {
        self.lstm.zero_state(1, device)
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::VarStore;

    use super::*;

    fn frames() -> Tensor {
        tch::manual_seed(3);
        Tensor::rand([2, 5, KEYS as i64], (Kind::Float, Device::Cpu)).gt(0.8).to_kind(Kind::Float)
    }

    #[test]
    fn an_untrained_independent_head_costs_about_88_ln2_per_frame() {
        let vs = VarStore::new(Device::Cpu);
        let net = RollNet::new(&vs.root(), RollNetConfig::plain(16, 1, RollOutput::Independent));
        let (nll, count) = net.nll(&frames(), &[5, 3], &[0, 0], false);
        assert_eq!(count, 4 + 2, "frames 2..T of each sequence");
        let per_frame = f64::try_from(nll).unwrap() / count as f64;
        assert!((per_frame - 88.0 * std::f64::consts::LN_2).abs() < 5.0, "{per_frame}");
    }

    #[test]
    fn nade_logits_see_only_lower_keys() {
        let vs = VarStore::new(Device::Cpu);
        let net = RollNet::new(&vs.root(), RollNetConfig::plain(8, 1, RollOutput::Nade { hidden: 6 }));
        let hidden = Tensor::randn([1, 8], (Kind::Float, Device::Cpu));
        let x = Tensor::zeros([1, KEYS as i64], (Kind::Float, Device::Cpu));
        let before = net.logits(&hidden, &x);
        let _ = x.get(0).get(40).fill_(1.0);
        let after = net.logits(&hidden, &x);
        let changed = (after - before).abs().gt(1e-7).get(0);
        let changed: Vec<bool> = (0..KEYS as i64).map(|k| changed.int64_value(&[k]) != 0).collect();
        assert!(changed[..=40].iter().all(|c| !c), "key 40 and below ignore key 40");
        assert!(changed[41..].iter().all(|c| *c), "keys above see it");
    }

    #[test]
    fn nade_logits_in_slices_are_the_logits_of_all_frames_at_once() {
        let vs = VarStore::new(Device::Cpu);
        // 64 units: 46 frames a slice, so 100 frames take three.
        let net = RollNet::new(&vs.root(), RollNetConfig::plain(8, 1, RollOutput::Nade { hidden: 64 }));
        let Head::Nade(nade) = &net.head else { unreachable!() };
        tch::manual_seed(4);
        let hidden = Tensor::randn([100, 8], (Kind::Float, Device::Cpu));
        let keys = Tensor::rand([100, KEYS as i64], (Kind::Float, Device::Cpu)).gt(0.9).to_kind(Kind::Float);
        let sliced = net.logits(&hidden, &keys);
        assert_eq!(sliced.size(), [100, KEYS as i64]);
        assert!(sliced.allclose(&nade.logits(&hidden, &keys), 1e-6, 1e-6, false));
    }

    #[test]
    fn generation_steps_see_the_positions_and_the_unshifted_key_training_saw() {
        let vs = VarStore::new(Device::Cpu);
        let config = RollNetConfig {
            position_period: 4,
            key_input: true,
            ..RollNetConfig::plain(8, 1, RollOutput::Independent)
        };
        let net = RollNet::new(&vs.root(), config);
        let frames = frames().narrow(0, 0, 1);
        let (batched, count) = net.nll(&frames, &[5], &[0], false);

        let mut state = net.zero_state(Device::Cpu);
        let mut stepped = 0.0;
        for t in 0..count {
            let (hidden, next) = net.step(&frames.select(1, t), t, &state);
            let target = frames.select(1, t + 1);
            let loss = net.logits(&hidden, &target).binary_cross_entropy_with_logits::<Tensor>(
                &target,
                None,
                None,
                tch::Reduction::Sum,
            );
            stepped += f64::try_from(loss).unwrap();
            // Generation takes the same step: near temperature 0 it draws the keys
            // whose logit is positive.
            let (drawn, _) = net.sample_next(&frames.select(1, t), t, &state, 1e-6, &mut Rng::new(1));
            assert!(drawn.equal(&net.logits(&hidden, &target).gt(0.0).to_kind(Kind::Float)));
            state = next;
        }
        assert!((f64::try_from(batched).unwrap() - stepped).abs() < 1e-3);

        let later = net.inputs(&frames.narrow(1, 0, 1), 5, &[0]);
        assert_eq!(
            Vec::<f32>::try_from(later.flatten(0, -1).narrow(0, KEYS as i64, 4)).unwrap(),
            [0., 1., 0., 0.]
        );
    }

    #[test]
    fn the_network_reads_a_sequences_shift_by_pitch_class() {
        let vs = VarStore::new(Device::Cpu);
        let config = RollNetConfig { key_input: true, ..RollNetConfig::plain(8, 1, RollOutput::Independent) };
        let net = RollNet::new(&vs.root(), config);
        let frames = frames();
        let nll = |shifts: [i64; 2]| f64::try_from(net.nll(&frames, &[5, 3], &shifts, false).0).unwrap();
        let unshifted = nll([0, 0]);
        assert_ne!(nll([3, 0]), unshifted, "a shift changes what the network predicts");
        assert_eq!(nll([12, -12]), unshifted, "an octave is no shift of pitch class");
        assert_eq!(nll([-9, 0]), nll([3, 0]), "down 9 is up 3");

        let inputs = net.inputs(&frames.narrow(1, 0, 1), 0, &[2, -1]);
        let shift_of = |row: i64| {
            let one_hot = Vec::<f32>::try_from(inputs.get(row).get(0).narrow(0, KEYS as i64, 12)).unwrap();
            one_hot.iter().position(|&x| x == 1.0)
        };
        assert_eq!((shift_of(0), shift_of(1)), (Some(2), Some(11)));
    }
}
