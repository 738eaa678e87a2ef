//! The piano-roll seq2seq network: an encoder LSTM reads a window of 88-key frames,
//! a decoder LSTM writes the next window, frame by frame, through dense 256 → ReLU
//! → dropout → 88 logits. Trained with teacher forcing whose ratio decays per
//! epoch; the loss is binary cross-entropy or focal loss (for the sparse rolls,
//! where most keys are off).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use super::lstm::Lstm;
use super::sampling::{Rng, draw_keys};
use crate::repr::pianoroll::{KEYS, from_binary};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RollLoss {
    Bce,
    /// Lin et al. 2017: α-balanced, (1 - p_t)^γ down-weights easy keys.
    Focal {
        alpha: f64,
        gamma: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seq2SeqConfig {
    /// Frames per window: the encoder reads one, the decoder writes the next.
    pub window: i64,
    pub hidden: i64,
    pub layers: i64,
    pub dropout: f64,
    /// DropConnect on the LSTM's recurrent weights while training.
    #[serde(default)]
    pub recurrent_dropout: f64,
    pub loss: RollLoss,
}

pub struct Seq2Seq {
    config: Seq2SeqConfig,
    encoder: Lstm,
    decoder: Lstm,
    dense: nn::Linear,
    out: nn::Linear,
}

impl Seq2Seq {
    pub fn new(vs: &Path, config: Seq2SeqConfig) -> Seq2Seq {
        let keys = KEYS as i64;
        Seq2Seq {
            encoder: Lstm::new(&(vs / "encoder"), keys, config.hidden, config.layers)
                .with_recurrent_dropout(config.recurrent_dropout),
            decoder: Lstm::new(&(vs / "decoder"), keys, config.hidden, config.layers)
                .with_recurrent_dropout(config.recurrent_dropout),
            dense: nn::linear(vs / "dense", config.hidden, 256, Default::default()),
            out: nn::linear(vs / "out", 256, keys, Default::default()),
            config,
        }
    }

    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    fn head(&self, hidden: &Tensor, train: bool) -> Tensor {
        self.out.forward(&self.dense.forward(hidden).relu().dropout(self.config.dropout, train))
    }

    /// Logits (batch, target length, 88) of the window after `source`. With teacher
    /// forcing the decoder reads the true previous frames; without, its own
    /// previous predictions (keys above one half).
    pub fn forward(&self, source: &Tensor, target_len: i64, teacher: Option<&Tensor>, train: bool) -> Tensor {
        let (batch, device) = (source.size()[0], source.device());
        let (_, state) =
            self.encoder.forward(source, &self.encoder.zero_state(batch, device), self.config.dropout, train);
        let silence = Tensor::zeros([batch, 1, KEYS as i64], (Kind::Float, device));
        match teacher {
            Some(target) => {
                let inputs = Tensor::cat(&[&silence, &target.narrow(1, 0, target_len - 1)], 1);
                let (hidden, _) = self.decoder.forward(&inputs, &state, self.config.dropout, train);
                self.head(&hidden, train)
            }
            None => {
                let (mut previous, mut state) = (silence.squeeze_dim(1), state);
                let mut logits = Vec::with_capacity(target_len as usize);
                for _ in 0..target_len {
                    let (hidden, next) = self.decoder.step(&previous, &state);
                    let frame_logits = self.head(&hidden, train);
                    previous = frame_logits.sigmoid().gt(0.5).to_kind(Kind::Float).detach();
                    logits.push(frame_logits);
                    state = next;
                }
                Tensor::stack(&logits, 1)
            }
        }
    }

    /// Free-running generation of `steps` frames after `source` (1, time, 88), each
    /// key drawn from its probability at `temperature` with the session's generator.
    pub fn sample(&self, source: &Tensor, steps: i64, temperature: f64, rng: &mut Rng) -> Vec<Vec<u8>> {
        let device = source.device();
        let (_, mut state) = self.encoder.forward(source, &self.encoder.zero_state(1, device), 0.0, false);
        let mut previous = Tensor::zeros([1, KEYS as i64], (Kind::Float, device));
        let mut frames = Vec::with_capacity(steps as usize);
        for _ in 0..steps {
            let (hidden, next) = self.decoder.step(&previous, &state);
            state = next;
            previous = draw_keys(&(self.head(&hidden, false) / temperature).sigmoid(), rng);
            let on =
                Vec::<f32>::try_from(previous.view([-1]).to_device(tch::Device::Cpu)).unwrap_or_default();
            frames.push(from_binary(&on));
        }
        frames
    }

    /// Summed loss over every key of every frame.
    pub fn loss(&self, logits: &Tensor, target: &Tensor) -> Tensor {
        let bce = logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, tch::Reduction::None);
        match self.config.loss {
            RollLoss::Bce => bce.sum(Kind::Float),
            RollLoss::Focal { alpha, gamma } => {
                let p: Tensor = logits.sigmoid();
                let miss: Tensor = 1.0 - target;
                let p_t: Tensor = &p * target + (1.0 - &p) * &miss;
                let alpha_t: Tensor = target * alpha + &miss * (1.0 - alpha);
                let weight: Tensor = (1.0f64 - p_t).pow_tensor_scalar(gamma);
                (alpha_t * weight * bce).sum(Kind::Float)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::VarStore;

    use super::*;

    fn net(loss: RollLoss) -> (VarStore, Seq2Seq) {
        tch::manual_seed(2);
        let vs = VarStore::new(Device::Cpu);
        let net = Seq2Seq::new(
            &vs.root(),
            Seq2SeqConfig { window: 4, hidden: 8, layers: 1, dropout: 0.0, recurrent_dropout: 0.0, loss },
        );
        (vs, net)
    }

    #[test]
    fn teacher_forcing_and_free_running_agree_on_the_first_frame() {
        let (_vs, net) = net(RollLoss::Bce);
        let source =
            Tensor::rand([2, 5, KEYS as i64], (Kind::Float, Device::Cpu)).gt(0.8).to_kind(Kind::Float);
        let target =
            Tensor::rand([2, 4, KEYS as i64], (Kind::Float, Device::Cpu)).gt(0.8).to_kind(Kind::Float);
        let forced = net.forward(&source, 4, Some(&target), false);
        let free = net.forward(&source, 4, None, false);
        assert_eq!(forced.size(), [2, 4, KEYS as i64]);
        assert!(
            forced.select(1, 0).allclose(&free.select(1, 0), 1e-5, 1e-6, false),
            "both start from silence"
        );
    }

    #[test]
    fn focal_loss_weighs_confident_keys_less_than_bce() {
        let (_vs, bce) = net(RollLoss::Bce);
        let (_vs2, focal) = net(RollLoss::Focal { alpha: 0.25, gamma: 2.0 });
        let logits = Tensor::from_slice(&[4.0f32, -4.0]).view([1, 1, 2]);
        let target = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 1, 2]);
        let (b, f) = (
            f64::try_from(bce.loss(&logits, &target)).unwrap(),
            f64::try_from(focal.loss(&logits, &target)).unwrap(),
        );
        assert!(f < b / 100.0, "focal {f} vs bce {b}");
    }
}
