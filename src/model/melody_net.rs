//! The folk-RNN network: a melody and a chord per frame in, both of the next frame
//! out, through one LSTM with two softmax heads.
//!
//! A frame travels as one id, `melody × CHORD_CLASSES + chord`, so the token
//! batching serves it unchanged; the network splits it into its two parts.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, Path};

use super::lstm::{Lstm, LstmState};
use super::token_net::{IGNORE, token_loss};
use crate::repr::melody_chords::{CHORD_CLASSES, Frame, MELODY_CLASSES};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MelodyNetConfig {
    pub embedding: i64,
    pub hidden: i64,
    pub layers: i64,
    pub dropout: f64,
    /// DropConnect on the LSTM's recurrent weights while training.
    #[serde(default)]
    pub recurrent_dropout: f64,
}

pub struct MelodyNet {
    config: MelodyNetConfig,
    melody_embedding: nn::Embedding,
    chord_embedding: nn::Embedding,
    lstm: Lstm,
    melody_head: nn::Linear,
    chord_head: nn::Linear,
}

pub fn frame_id(frame: Frame) -> i64 {
    i64::from(frame.melody) * CHORD_CLASSES + i64::from(frame.chord)
}

/// Splits frame ids into melody and chord ids, keeping padding as padding.
fn split(ids: &Tensor) -> (Tensor, Tensor) {
    let padding = ids.eq(IGNORE);
    let safe = ids.clamp_min(0);
    let melody = safe.divide_scalar_mode(CHORD_CLASSES, "floor").masked_fill(&padding, IGNORE);
    let chord = safe.remainder(CHORD_CLASSES).masked_fill(&padding, IGNORE);
    (melody, chord)
}

impl MelodyNet {
    pub fn new(vs: &Path, config: MelodyNetConfig) -> MelodyNet {
        let embedding =
            |name: &str, classes| nn::embedding(vs / name, classes, config.embedding, Default::default());
        MelodyNet {
            melody_embedding: embedding("melody_embedding", MELODY_CLASSES),
            chord_embedding: embedding("chord_embedding", CHORD_CLASSES),
            lstm: Lstm::new(&(vs / "lstm"), 2 * config.embedding, config.hidden, config.layers)
                .with_recurrent_dropout(config.recurrent_dropout),
            melody_head: nn::linear(vs / "melody_head", config.hidden, MELODY_CLASSES, Default::default()),
            chord_head: nn::linear(vs / "chord_head", config.hidden, CHORD_CLASSES, Default::default()),
            config,
        }
    }

    pub fn config(&self) -> &MelodyNetConfig {
        &self.config
    }

    fn embed(&self, ids: &Tensor) -> Tensor {
        let (melody, chord) = split(ids);
        Tensor::cat(&[self.melody_embedding.forward(&melody), self.chord_embedding.forward(&chord)], -1)
    }

    /// Summed loss of both heads over frame ids (batch, time) predicting `targets`,
    /// the number of frames, and how many melodies the arg-max got right.
    pub fn loss(&self, inputs: &Tensor, targets: &Tensor, train: bool) -> (Tensor, i64, i64) {
        let state = self.lstm.zero_state(inputs.size()[0], inputs.device());
        let (hidden, _) = self.lstm.forward(&self.embed(inputs), &state, self.config.dropout, train);
        let hidden = hidden.dropout(self.config.dropout, train);
        let (melody_targets, chord_targets) = split(targets);
        let (melody_loss, items, correct) = token_loss(&self.melody_head.forward(&hidden), &melody_targets);
        let (chord_loss, _, _) = token_loss(&self.chord_head.forward(&hidden), &chord_targets);
        (melody_loss + chord_loss, items, correct)
    }

    /// One step: frame ids (batch,) → melody and chord logits.
    pub fn step(&self, ids: &Tensor, state: &LstmState) -> (Tensor, Tensor, LstmState) {
        let (hidden, state) = self.lstm.step(&self.embed(ids), state);
        (self.melody_head.forward(&hidden), self.chord_head.forward(&hidden), state)
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> LstmState {
        self.lstm.zero_state(batch, device)
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::VarStore;

    use super::*;

    fn frame_of(id: i64) -> Frame {
        Frame { melody: (id / CHORD_CLASSES) as u8, chord: (id % CHORD_CLASSES) as u8 }
    }

    #[test]
    fn frames_travel_as_one_id() {
        for frame in
            [Frame { melody: 0, chord: 0 }, Frame { melody: 129, chord: 48 }, Frame { melody: 62, chord: 5 }]
        {
            assert_eq!(frame_of(frame_id(frame)), frame);
        }
        let ids = Tensor::from_slice(&[frame_id(Frame { melody: 3, chord: 7 }), IGNORE]);
        let (melody, chord) = split(&ids);
        assert_eq!(Vec::<i64>::try_from(melody).unwrap(), [3, IGNORE]);
        assert_eq!(Vec::<i64>::try_from(chord).unwrap(), [7, IGNORE]);
    }

    /// With every weight zero, both heads predict uniformly: the loss of a frame is
    /// exactly the log of the melody classes plus the log of the chord classes.
    /// (Zeros rather than a seed: libtorch's generator is shared by tests running
    /// in parallel, so seeded random weights differed from run to run and the old
    /// "about the log, within 0.5" check failed now and then.)
    #[test]
    fn a_uniform_net_costs_the_log_of_both_class_counts_per_scored_frame() {
        let vs = VarStore::new(Device::Cpu);
        let net = MelodyNet::new(
            &vs.root(),
            MelodyNetConfig { embedding: 4, hidden: 8, layers: 1, dropout: 0.0, recurrent_dropout: 0.0 },
        );
        tch::no_grad(|| {
            for (_, mut variable) in vs.variables() {
                let _ = variable.zero_();
            }
        });
        let inputs = Tensor::from_slice(&[1i64, 200, 300]).view([1, 3]);
        let targets = Tensor::from_slice(&[200i64, 300, IGNORE]).view([1, 3]);
        let (loss, items, _) = net.loss(&inputs, &targets, false);
        assert_eq!(items, 2);
        let per_frame = f64::try_from(loss).unwrap() / 2.0;
        let expected = (MELODY_CLASSES as f64).ln() + (CHORD_CLASSES as f64).ln();
        assert!((per_frame - expected).abs() < 1e-4, "{per_frame} vs {expected}");
    }
}
