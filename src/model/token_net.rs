//! Token networks: ids → embedding → stacked LSTM → a head → logits over the
//! vocabulary. The heads are the tutorials' own, so each preset keeps its shape:
//! - `linear`: dropout → dense (fugue's default);
//! - `batchnorm-relu`: batch norm → ReLU → dropout → dense (the Bach LSTM);
//! - `dense256`: batch norm → dropout → dense 256 → ReLU → batch norm → dropout →
//!   dense (the classical-piano LSTM).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, Path};
use tch::{Kind, Tensor};

use super::frozen_affine::FrozenAffine;
use super::lstm::{FrozenLstm, Lstm, LstmState};
use crate::devices::WeightFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    Linear,
    BatchnormRelu,
    Dense256,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenNetConfig {
    pub vocabulary: i64,
    pub embedding: i64,
    pub hidden: i64,
    pub layers: i64,
    pub dropout: f64,
    /// DropConnect on the LSTM's recurrent weights while training.
    #[serde(default)]
    pub recurrent_dropout: f64,
    pub head: Head,
}

pub struct TokenNet {
    config: TokenNetConfig,
    embedding: nn::Embedding,
    lstm: Lstm,
    head: HeadLayers,
}

impl TokenNet {
    pub fn new(vs: &Path, config: TokenNetConfig) -> TokenNet {
        let embedding =
            nn::embedding(vs / "embedding", config.vocabulary, config.embedding, Default::default());
        let lstm = Lstm::new(&(vs / "lstm"), config.embedding, config.hidden, config.layers)
            .with_recurrent_dropout(config.recurrent_dropout);
        let head = HeadLayers::new(&(vs / "head"), &config);
        TokenNet { config, embedding, lstm, head }
    }

    pub fn config(&self) -> &TokenNetConfig {
        &self.config
    }

    /// Logits (batch, time, vocabulary) for ids (batch, time).
    pub fn forward(&self, ids: &Tensor, train: bool) -> Tensor {
        let (batch, time) = (ids.size()[0], ids.size()[1]);
        let embedded = self.embedding.forward(ids);
        let state = self.lstm.zero_state(batch, ids.device());
        let (hidden, _) = self.lstm.forward(&embedded, &state, self.config.dropout, train);
        let flat = hidden.reshape([batch * time, self.config.hidden]);
        self.head.forward_t(&flat, self.config.dropout, train).reshape([batch, time, self.config.vocabulary])
    }

    /// The network as a loaded model steps it ([`FrozenTokenNet`]), its dense
    /// weights kept in `format`: a copy that does not follow later changes to these
    /// weights.
    pub fn frozen(&self, format: WeightFormat) -> anyhow::Result<FrozenTokenNet> {
        Ok(FrozenTokenNet {
            embedding: self.embedding.ws.detach().copy(),
            lstm: self.lstm.frozen(format)?,
            head: self.head.frozen(format)?,
            layers: self.lstm.layers(),
            hidden: self.config.hidden,
        })
    }
}

/// A token network's weights laid out for stepping streams at inference (see
/// [`FrozenLstm`]): a row's logits are the same bits at every batch size
/// [`FrozenTokenNet::batch_rows`] gives.
pub struct FrozenTokenNet {
    embedding: Tensor,
    lstm: FrozenLstm,
    head: FrozenHead,
    layers: i64,
    hidden: i64,
}

impl FrozenTokenNet {
    /// One step for a batch of streams: ids (batch,) → logits (batch, vocabulary).
    pub fn step(&self, ids: &Tensor, state: &LstmState) -> (Tensor, LstmState) {
        let embedded = Tensor::embedding(&self.embedding, ids, -1, false, false);
        let (hidden, state) = self.lstm.step(&embedded, state);
        (self.head.forward(&hidden), state)
    }

    /// Logits (time, vocabulary) after each id of one sequence, from a zero state.
    pub fn logits_of(&self, ids: &[i64], device: tch::Device) -> Tensor {
        let mut state = self.zero_state(1, device);
        let logits: Vec<Tensor> = ids
            .iter()
            .map(|&id| {
                let (logits, next) = self.step(&Tensor::from_slice(&[id]).to_device(device), &state);
                state = next;
                logits
            })
            .collect();
        Tensor::cat(&logits, 0)
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> LstmState {
        LstmState::zeros(self.layers, batch, self.hidden, device)
    }

    /// How many rows a batch of `rows` streams is stepped as ([`WeightFormat::batch_rows`]).
    pub fn batch_rows(&self, rows: usize) -> usize {
        self.lstm.format().batch_rows(rows)
    }
}

/// The head's layers, under the names the tutorials' shapes give them.
enum HeadLayers {
    Linear { out: nn::Linear },
    BatchnormRelu { norm: nn::BatchNorm, out: nn::Linear },
    Dense256 { norm1: nn::BatchNorm, dense: nn::Linear, norm2: nn::BatchNorm, out: nn::Linear },
}

impl HeadLayers {
    fn new(vs: &Path, config: &TokenNetConfig) -> HeadLayers {
        let (hidden, vocabulary) = (config.hidden, config.vocabulary);
        let linear = |name: &str, input, output| nn::linear(vs / name, input, output, Default::default());
        let norm = |name: &str, size| nn::batch_norm1d(vs / name, size, Default::default());
        match config.head {
            Head::Linear => HeadLayers::Linear { out: linear("out", hidden, vocabulary) },
            Head::BatchnormRelu => HeadLayers::BatchnormRelu {
                norm: norm("norm", hidden),
                out: linear("out", hidden, vocabulary),
            },
            Head::Dense256 => HeadLayers::Dense256 {
                norm1: norm("norm1", hidden),
                dense: linear("dense", hidden, 256),
                norm2: norm("norm2", 256),
                out: linear("out", 256, vocabulary),
            },
        }
    }

    fn forward_t(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        let drop = |x: Tensor| x.dropout(dropout, train);
        match self {
            HeadLayers::Linear { out } => drop(x.shallow_clone()).apply(out),
            HeadLayers::BatchnormRelu { norm, out } => drop(x.apply_t(norm, train).relu()).apply(out),
            HeadLayers::Dense256 { norm1, dense, norm2, out } => {
                let x = drop(x.apply_t(norm1, train)).apply(dense).relu();
                drop(x.apply_t(norm2, train)).apply(out)
            }
        }
    }

    fn frozen(&self, format: WeightFormat) -> anyhow::Result<FrozenHead> {
        let affine = |linear: &nn::Linear| {
            let bias = linear.bs.as_ref().expect("the head's dense layers have biases: this is a bug");
            FrozenAffine::new(&linear.ws, bias, format)
        };
        Ok(match self {
            HeadLayers::Linear { out } => FrozenHead::Linear { out: affine(out)? },
            HeadLayers::BatchnormRelu { norm, out } => {
                FrozenHead::BatchnormRelu { norm: FrozenNorm::of(norm), out: affine(out)? }
            }
            HeadLayers::Dense256 { norm1, dense, norm2, out } => FrozenHead::Dense256 {
                norm1: FrozenNorm::of(norm1),
                dense: affine(dense)?,
                norm2: FrozenNorm::of(norm2),
                out: affine(out)?,
            },
        })
    }
}

/// The head at inference: no dropout, batch norms with their running statistics.
enum FrozenHead {
    Linear { out: FrozenAffine },
    BatchnormRelu { norm: FrozenNorm, out: FrozenAffine },
    Dense256 { norm1: FrozenNorm, dense: FrozenAffine, norm2: FrozenNorm, out: FrozenAffine },
}

impl FrozenHead {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            FrozenHead::Linear { out } => out.forward(x),
            FrozenHead::BatchnormRelu { norm, out } => out.forward(&norm.forward(x).relu()),
            FrozenHead::Dense256 { norm1, dense, norm2, out } => {
                out.forward(&norm2.forward(&dense.forward(&norm1.forward(x)).relu()))
            }
        }
    }
}

/// A batch norm at inference, folded into one scale and shift per feature.
struct FrozenNorm {
    scale: Tensor,
    shift: Tensor,
}

impl FrozenNorm {
    fn of(norm: &nn::BatchNorm) -> FrozenNorm {
        let weight = norm.ws.as_ref().expect("batch norms are affine: this is a bug");
        let bias = norm.bs.as_ref().expect("batch norms are affine: this is a bug");
        // The head's batch norms are built with the default configuration.
        let eps = nn::BatchNormConfig::default().eps;
        let scale = weight / (&norm.running_var + eps).sqrt();
        let shift = bias - &norm.running_mean * &scale;
        FrozenNorm { scale: scale.detach(), shift: shift.detach() }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x * &self.scale + &self.shift
    }
}

/// Summed cross-entropy over the targets that are not `IGNORE`, their number, and
/// how many the arg-max got right.
pub fn token_loss(logits: &Tensor, targets: &Tensor) -> (Tensor, i64, i64) {
    let vocabulary = logits.size()[2];
    let flat_logits = logits.reshape([-1, vocabulary]);
    let flat_targets = targets.reshape([-1]);
    let loss =
        flat_logits.cross_entropy_loss::<Tensor>(&flat_targets, None, tch::Reduction::Sum, IGNORE, 0.0);
    let counted = flat_targets.ne(IGNORE);
    let items = counted.sum(Kind::Int64).int64_value(&[]);
    let correct = flat_logits.argmax(1, false).eq_tensor(&flat_targets).logical_and(&counted);
    (loss, items, correct.sum(Kind::Int64).int64_value(&[]))
}

/// Target id that counts for nothing (padding).
pub const IGNORE: i64 = -100;

#[cfg(test)]
mod tests {
    use tch::Device;
    use tch::nn::VarStore;

    use super::*;

    /// A network small enough for unit tests: 11 tokens, no dropout, a linear head.
    fn small() -> TokenNetConfig {
        TokenNetConfig {
            vocabulary: 11,
            embedding: 4,
            hidden: 8,
            layers: 2,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            head: Head::Linear,
        }
    }

    #[test]
    fn every_head_gives_vocabulary_logits_and_steps_agree_with_sequences() {
        for head in [Head::Linear, Head::BatchnormRelu, Head::Dense256] {
            tch::manual_seed(1);
            let vs = VarStore::new(Device::Cpu);
            let config = TokenNetConfig { dropout: 0.2, head, ..small() };
            let net = TokenNet::new(&vs.root(), config);
            let ids = Tensor::from_slice(&[1i64, 5, 3, 7]).view([1, 4]);
            // A training pass moves the batch norms' running statistics off their
            // initial values, so the frozen head's folding of them is tested.
            let _ = net.forward(&ids, true);
            let logits = net.forward(&ids, false);
            assert_eq!(logits.size(), [1, 4, 11]);
            for (format, tolerance) in [(WeightFormat::Fp32, 1e-4), (WeightFormat::Fp16, 1e-2)] {
                let frozen = net.frozen(format).unwrap();
                let mut state = frozen.zero_state(1, Device::Cpu);
                for t in 0..4 {
                    let (step, next) = frozen.step(&ids.select(1, t), &state);
                    let expected = logits.select(1, t);
                    assert!(
                        step.allclose(&expected, tolerance, tolerance, false),
                        "{head:?} {format:?} step {t}"
                    );
                    state = next;
                }
            }
        }
    }

    #[test]
    fn recurrent_dropout_reaches_the_lstm_in_training_only() {
        for (recurrent_dropout, differs) in [(0.0, false), (0.5, true)] {
            let vs = VarStore::new(Device::Cpu);
            let config = TokenNetConfig { recurrent_dropout, ..small() };
            let net = TokenNet::new(&vs.root(), config);
            let ids = Tensor::from_slice(&[1i64, 5, 3, 7]).view([1, 4]);
            let trained = net.forward(&ids, true);
            let evaluated = net.forward(&ids, false);
            assert_eq!(!trained.allclose(&evaluated, 1e-6, 1e-7, false), differs, "{recurrent_dropout}");
        }
    }

    #[test]
    fn padding_targets_do_not_count() {
        let logits = Tensor::zeros([1, 3, 4], (Kind::Float, Device::Cpu));
        let targets = Tensor::from_slice(&[0i64, IGNORE, 2]).view([1, 3]);
        let (loss, items, _) = token_loss(&logits, &targets);
        assert_eq!(items, 2);
        assert!((f64::try_from(loss).unwrap() - 2.0 * 4f64.ln()).abs() < 1e-5);
    }
}
