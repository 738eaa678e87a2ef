//! Token networks: ids → embedding → stacked LSTM → a head → logits over the
//! vocabulary. The heads are the tutorials' own, so each preset keeps its shape:
//! - `linear`: dropout → dense (fugue's default);
//! - `batchnorm-relu`: batch norm → ReLU → dropout → dense (the Bach LSTM);
//! - `dense256`: batch norm → dropout → dense 256 → ReLU → batch norm → dropout →
//!   dense (the classical-piano LSTM).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT, Path};
use tch::{Kind, Tensor};

use super::lstm::{Lstm, LstmState};

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
    head: nn::SequentialT,
}

impl TokenNet {
    pub fn new(vs: &Path, config: TokenNetConfig) -> TokenNet {
        let embedding =
            nn::embedding(vs / "embedding", config.vocabulary, config.embedding, Default::default());
        let lstm = Lstm::new(&(vs / "lstm"), config.embedding, config.hidden, config.layers)
            .with_recurrent_dropout(config.recurrent_dropout);
        let head = head(&(vs / "head"), &config);
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
        self.head.forward_t(&flat, train).reshape([batch, time, self.config.vocabulary])
    }

    /// One step for a batch of streams: ids (batch,) → logits (batch, vocabulary).
    pub fn step(&self, ids: &Tensor, state: &LstmState) -> (Tensor, LstmState) {
        let (hidden, state) = self.lstm.step(&self.embedding.forward(ids), state);
        (self.head.forward_t(&hidden, false), state)
    }

    pub fn zero_state(&self, batch: i64, device: tch::Device) -> LstmState {
        self.lstm.zero_state(batch, device)
    }
}

fn head(vs: &Path, config: &TokenNetConfig) -> nn::SequentialT {
    let (hidden, vocabulary, dropout) = (config.hidden, config.vocabulary, config.dropout);
    let drop = move |x: &Tensor, train: bool| x.dropout(dropout, train);
    match config.head {
        Head::Linear => {
            nn::seq_t().add_fn_t(drop).add(nn::linear(vs / "out", hidden, vocabulary, Default::default()))
        }
        Head::BatchnormRelu => nn::seq_t()
            .add(nn::batch_norm1d(vs / "norm", hidden, Default::default()))
            .add_fn(Tensor::relu)
            .add_fn_t(drop)
            .add(nn::linear(vs / "out", hidden, vocabulary, Default::default())),
        Head::Dense256 => nn::seq_t()
            .add(nn::batch_norm1d(vs / "norm1", hidden, Default::default()))
            .add_fn_t(drop)
            .add(nn::linear(vs / "dense", hidden, 256, Default::default()))
            .add_fn(Tensor::relu)
            .add(nn::batch_norm1d(vs / "norm2", 256, Default::default()))
            .add_fn_t(drop)
            .add(nn::linear(vs / "out", 256, vocabulary, Default::default())),
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
            let logits = net.forward(&ids, false);
            assert_eq!(logits.size(), [1, 4, 11]);
            let mut state = net.zero_state(1, Device::Cpu);
            for t in 0..4 {
                let (step, next) = net.step(&ids.select(1, t), &state);
                assert!(step.allclose(&logits.select(1, t), 1e-4, 1e-5, false), "{head:?} step {t}");
                state = next;
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
