//! The piano-roll network: 88-key frames in, the next frame's 88 keys out.
//!
//! Two output layers:
//! - `independent`: 88 sigmoids, each key on its own given the LSTM state (the
//!   benchmark's "LSTM" row);
//! - `nade`: an autoregressive NADE over the keys, low to high, conditioned on the
//!   LSTM state (Boulanger-Lewandowski et al.'s RNN-NADE): each key also sees the
//!   keys below it in the same frame, so chords are modelled jointly.
//!
//! A network may hold several members: LSTMs with heads of their own, trained side
//! by side on the same batches, each with its own weights and dropout. Each key's
//! probability (for NADE, given the keys below it) is the members' mean, so the
//! output stays independent sigmoids or a NADE, and an ensemble's likelihood is
//! still exact.

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
    /// Networks whose key probabilities are averaged (1: a single network).
    #[serde(default = "super::hyperparameters::one_member")]
    pub members: i64,
    pub output: RollOutput,
}

pub struct RollNet {
    config: RollNetConfig,
    members: Vec<Member>,
}

/// One LSTM and its output layer.
struct Member {
    lstm: Lstm,
    head: Head,
}

/// The LSTM state of every member of a network.
pub struct RollState(Vec<LstmState>);

/// Where a member's variables live when a network has several: `member<i>.`. A
/// single network's sit at the root, as in every artifact before members.
pub const MEMBER_SCOPE: &str = "member";

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
            members: 1,
            output,
        }
    }
}

impl Member {
    fn new(vs: &Path, config: &RollNetConfig) -> Member {
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
        Member { lstm, head }
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
}

impl RollNet {
    pub fn new(vs: &Path, config: RollNetConfig) -> RollNet {
        let members = match config.members {
            1 => vec![Member::new(vs, &config)],
            count => (0..count).map(|i| Member::new(&(vs / format!("{MEMBER_SCOPE}{i}")), &config)).collect(),
        };
        RollNet { config, members }
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
        // Only real frames count: frame t+1 exists when t + 1 < length.
        let steps = Tensor::arange(time - 1, (Kind::Int64, device)).unsqueeze(0);
        let limits = Tensor::from_slice(lengths).to_device(device).unsqueeze(1) - 1;
        let mask = steps.lt_tensor(&limits);
        let targets = frames.narrow(1, 1, time - 1).index(&[Some(&mask)]);
        let logits = self.members.iter().map(|member| {
            let keys = frames.narrow(1, 0, time - 1).dropout(self.config.dropout, train);
            let inputs = self.inputs(&keys, 0, shifts);
            let state = member.lstm.zero_state(batch, device);
            let (hidden, _) = member.lstm.forward(&inputs, &state, self.config.dropout, train);
            let hidden = hidden.dropout(self.config.dropout, train).index(&[Some(&mask)]);
            member.logits(&hidden, &targets)
        });
        let nll = if train || self.members.len() == 1 {
            // Each member learns on its own: the loss is the mean of theirs.
            let bce = |logits: Tensor| {
                logits.binary_cross_entropy_with_logits::<Tensor>(&targets, None, None, tch::Reduction::Sum)
            };
            logits.map(bce).sum::<Tensor>() / self.members.len() as f64
        } else {
            mean_probability_nll(&Tensor::stack(&logits.collect::<Vec<_>>(), 0), &targets)
        };
        (nll, targets.size()[0])
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

    /// One step of generation: feeds `frame` (1, 88), the sequence's frame number
    /// `position`, and samples the next frame, every key drawn from the stream's own
    /// generator with the mean of the members' probabilities.
    pub fn sample_next(
        &self,
        frame: &Tensor,
        position: i64,
        state: &RollState,
        temperature: f64,
        rng: &mut Rng,
    ) -> (Tensor, RollState) {
        let (hidden, states): (Vec<Tensor>, Vec<LstmState>) = self
            .members
            .iter()
            .zip(&state.0)
            .map(|(member, state)| self.step(member, frame, position, state))
            .unzip();
        let heads = self.members.iter().map(|member| &member.head);
        let next = match self.config.output {
            RollOutput::Independent => {
                let probabilities = heads
                    .filter_map(Head::independent)
                    .zip(&hidden)
                    .map(|(out, hidden)| (out.forward(hidden) / temperature).sigmoid());
                draw_keys(&mean_of(probabilities.collect()), rng)
            }
            RollOutput::Nade { .. } => {
                sample_nade_keys(heads.filter_map(Head::nade).collect(), &hidden, temperature, rng)
            }
        };
        (next, RollState(states))
    }

    /// Feeds one frame (batch, 88) at frame number `position` to `member`: its
    /// LSTM's output and next state, as training sees that frame of an
    /// untransposed sequence.
    fn step(&self, member: &Member, frame: &Tensor, position: i64, state: &LstmState) -> (Tensor, LstmState) {
        let unshifted = vec![0; frame.size()[0] as usize];
        let input = self.inputs(&frame.unsqueeze(1), position, &unshifted).squeeze_dim(1);
        member.lstm.step(&input, state)
    }

    pub fn zero_state(&self, device: tch::Device) -> RollState {
        RollState(self.members.iter().map(|member| member.lstm.zero_state(1, device)).collect())
    }
}

impl Head {
    fn independent(&self) -> Option<&nn::Linear> {
        match self {
            Head::Independent(out) => Some(out),
            Head::Nade(_) => None,
        }
    }

    fn nade(&self) -> Option<&Nade> {
        match self {
            Head::Nade(nade) => Some(nade),
            Head::Independent(_) => None,
        }
    }
}

/// The NADE's keys, low to high, each drawn with the mean of the members'
/// probabilities given the keys drawn below it.
fn sample_nade_keys(nades: Vec<&Nade>, hidden: &[Tensor], temperature: f64, rng: &mut Rng) -> Tensor {
    let mut activations: Vec<Tensor> =
        nades.iter().zip(hidden).map(|(nade, hidden)| nade.c.forward(hidden)).collect();
    let biases: Vec<Tensor> = nades.iter().zip(hidden).map(|(nade, hidden)| nade.b.forward(hidden)).collect();
    let mut keys = Vec::with_capacity(KEYS);
    for key in 0..KEYS as i64 {
        let probabilities =
            nades.iter().zip(&activations).zip(&biases).map(|((nade, activation), biases)| {
                let h = activation.sigmoid();
                let logit =
                    biases.select(1, key) + (h * nade.v.get(key)).sum_dim_intlist(1, false, Kind::Float);
                (logit / temperature).sigmoid()
            });
        let on = draw_keys(&mean_of(probabilities.collect()), rng);
        for (nade, activation) in nades.iter().zip(&mut activations) {
            *activation += on.unsqueeze(1) * nade.w.get(key).unsqueeze(0);
        }
        keys.push(on);
    }
    Tensor::stack(&keys, 1)
}

/// The members' mean of each key's probability (members stacked first).
fn mean_of(probabilities: Vec<Tensor>) -> Tensor {
    Tensor::stack(&probabilities, 0).mean_dim(0, false, Kind::Float)
}

/// Summed negative log-likelihood of `targets` (frames, 88) when each key is on
/// with the mean of the members' probabilities, from their `logits` (members,
/// frames, 88): log p̄ = logsumexp(log σ(l)) − ln K, and likewise off with −l.
fn mean_probability_nll(logits: &Tensor, targets: &Tensor) -> Tensor {
    let log_members = (logits.size()[0] as f64).ln();
    let on = logits.log_sigmoid().logsumexp([0], false) - log_members;
    let off = (-logits).log_sigmoid().logsumexp([0], false) - log_members;
    let log_likelihood: Tensor = targets * on + (1.0 - targets) * off;
    -log_likelihood.sum(Kind::Float)
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
        let before = net.members[0].logits(&hidden, &x);
        let _ = x.get(0).get(40).fill_(1.0);
        let after = net.members[0].logits(&hidden, &x);
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
        let Head::Nade(nade) = &net.members[0].head else { unreachable!() };
        tch::manual_seed(4);
        let hidden = Tensor::randn([100, 8], (Kind::Float, Device::Cpu));
        let keys = Tensor::rand([100, KEYS as i64], (Kind::Float, Device::Cpu)).gt(0.9).to_kind(Kind::Float);
        let sliced = net.members[0].logits(&hidden, &keys);
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
            let (hidden, next) = net.step(&net.members[0], &frames.select(1, t), t, &state.0[0]);
            let next = RollState(vec![next]);
            let target = frames.select(1, t + 1);
            let loss = net.members[0].logits(&hidden, &target).binary_cross_entropy_with_logits::<Tensor>(
                &target,
                None,
                None,
                tch::Reduction::Sum,
            );
            stepped += f64::try_from(loss).unwrap();
            // Generation takes the same step: near temperature 0 it draws the keys
            // whose logit is positive.
            let (drawn, _) = net.sample_next(&frames.select(1, t), t, &state, 1e-6, &mut Rng::new(1));
            assert!(drawn.equal(&net.members[0].logits(&hidden, &target).gt(0.0).to_kind(Kind::Float)));
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

    /// A network of two members, each member's logits for the second frame of
    /// `frames` (1, 2, 88), and the second frame.
    fn two_members(output: RollOutput) -> (VarStore, RollNet, Vec<Tensor>, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let net =
            RollNet::new(&vs.root(), RollNetConfig { members: 2, ..RollNetConfig::plain(8, 1, output) });
        let frames = frames().narrow(0, 0, 1).narrow(1, 0, 2);
        let target = frames.select(1, 1);
        let logits = net
            .members
            .iter()
            .zip(&net.zero_state(Device::Cpu).0)
            .map(|(member, state)| {
                member.logits(&net.step(member, &frames.select(1, 0), 0, state).0, &target)
            })
            .collect();
        (vs, net, logits, frames)
    }

    #[test]
    fn members_keep_their_weights_apart_and_a_single_network_keeps_the_names_it_always_had() {
        let single = VarStore::new(Device::Cpu);
        RollNet::new(&single.root(), RollNetConfig::plain(8, 1, RollOutput::Independent));
        let (members, ..) = two_members(RollOutput::Independent);
        let names = |vs: &VarStore| vs.variables().into_keys().collect::<std::collections::BTreeSet<_>>();
        assert!(names(&single).contains("lstm.weight_ih_l0") && names(&single).contains("out.weight"));
        for name in names(&single) {
            assert!(names(&members).contains(&format!("member0.{name}")), "{name}");
            assert!(names(&members).contains(&format!("member1.{name}")), "{name}");
        }
        assert_eq!(names(&members).len(), 2 * names(&single).len());
    }

    #[test]
    fn members_score_each_key_by_the_mean_of_their_probabilities_and_learn_each_on_its_own() {
        for output in [RollOutput::Independent, RollOutput::Nade { hidden: 6 }] {
            let (_vs, net, logits, frames) = two_members(output);
            let target = frames.select(1, 1);
            let bce = |logits: &Tensor| {
                let loss = logits.binary_cross_entropy_with_logits::<Tensor>(
                    &target,
                    None,
                    None,
                    tch::Reduction::Sum,
                );
                f64::try_from(loss).unwrap()
            };
            let (first, second) = (bce(&logits[0]), bce(&logits[1]));
            let mean_on = (logits[0].sigmoid() + logits[1].sigmoid()) / 2.0;
            let off: Tensor = 1.0 - &mean_on;
            let log_likelihood: Tensor = &target * mean_on.log() + (1.0 - &target) * off.log();
            let expected = -f64::try_from(log_likelihood.sum(Kind::Float)).unwrap();

            let (scored, count) = net.nll(&frames, &[2], &[0], false);
            let scored = f64::try_from(scored).unwrap();
            assert_eq!(count, 1);
            assert!((scored - expected).abs() < 1e-4, "{output:?}: {scored} against {expected}");
            assert!(
                scored < (first + second) / 2.0,
                "{output:?}: the mean probability beats the mean member"
            );

            // Without dropout, training's loss is the members' mean loss: each
            // member's gradient is the one it would have alone, halved.
            let (trained, _) = net.nll(&frames, &[2], &[0], true);
            let trained = f64::try_from(trained).unwrap();
            assert!((trained - (first + second) / 2.0).abs() < 1e-4, "{output:?}: {trained}");
        }
    }

    #[test]
    fn members_draw_each_key_with_the_mean_of_their_probabilities() {
        let (_vs, net, logits, frames) = two_members(RollOutput::Independent);
        let votes = logits[0].gt(0.0).to_kind(Kind::Float) + logits[1].gt(0.0).to_kind(Kind::Float);
        let state = net.zero_state(Device::Cpu);
        let draws: Vec<Tensor> = (0..200)
            .map(|seed| net.sample_next(&frames.select(1, 0), 0, &state, 1e-6, &mut Rng::new(seed)).0)
            .collect();
        let share_on = Tensor::stack(&draws, 0).mean_dim(0, false, Kind::Float);
        let share = |votes_for: f64| share_on.masked_select(&votes.eq(votes_for));
        assert!(share(2.0).eq(1.0).all().int64_value(&[]) == 1, "both say on: always on");
        assert!(share(0.0).eq(0.0).all().int64_value(&[]) == 1, "both say off: always off");
        let split = share(1.0);
        assert!(split.numel() > 0, "the untrained members disagree on some keys");
        // Each such key is on about half the time (200 draws: 0.5 ± 0.035).
        let shares = Vec::<f32>::try_from(split).unwrap();
        assert!(shares.iter().all(|share| (share - 0.5).abs() < 0.15), "one for, one against: {shares:?}");
    }

    #[test]
    fn members_that_agree_draw_what_one_of_them_draws_alone() {
        for output in [RollOutput::Independent, RollOutput::Nade { hidden: 6 }] {
            let (vs, net, ..) = two_members(output);
            let alone = VarStore::new(Device::Cpu);
            let single = RollNet::new(&alone.root(), RollNetConfig::plain(8, 1, output));
            tch::no_grad(|| {
                let variables = vs.variables();
                for (name, mut tensor) in alone.variables() {
                    tensor.copy_(&variables[&format!("{MEMBER_SCOPE}0.{name}")]);
                    if name.starts_with("nade.") {
                        // Untrained, each key barely moves the keys above it.
                        let _ = tensor.g_mul_scalar_(300.0);
                    }
                    for member in 0..2 {
                        variables[&format!("{MEMBER_SCOPE}{member}.{name}")].shallow_clone().copy_(&tensor);
                    }
                }
            });
            let frame = frames().select(1, 0).narrow(0, 0, 1);
            let draw = |net: &RollNet| {
                net.sample_next(&frame, 3, &net.zero_state(Device::Cpu), 1.0, &mut Rng::new(5)).0
            };
            assert!(draw(&net).equal(&draw(&single)), "{output:?}");
        }
    }
}
