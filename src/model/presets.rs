//! Presets: named recipes of representation, network and hyperparameters, each
//! overridable by name.

use serde::{Deserialize, Serialize};

use super::optim::{OptimizerConfig, OptimizerKind};
use super::pianoroll::{RollNetConfig, RollOutput};
use crate::repr::pianoroll::Grid;
use crate::train::FitConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 88-key frames → LSTM → 88 independent sigmoids (the benchmark's LSTM row).
    PianorollLstm,
    /// 88-key frames → LSTM → NADE over the keys (the benchmark's RNN-NADE row).
    PianorollNade,
}

/// Every knob a preset has, by the names users override them with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    pub epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub learning_rate_decay: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub clip_grad_norm: Option<f64>,
    pub layers: i64,
    pub hidden_size: i64,
    /// Hidden units of the NADE output layer (piano-roll NADE only).
    pub nade_hidden_size: i64,
    pub dropout: f64,
    pub patience: u32,
    pub validation_fraction: f64,
    pub seed: u64,
    pub grid: Grid,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::PianorollLstm => "pianoroll-lstm",
            Preset::PianorollNade => "pianoroll-nade",
        }
    }

    pub fn defaults(self) -> Hyperparameters {
        let roll = Hyperparameters {
            epochs: 200,
            batch_size: 8,
            learning_rate: 1e-3,
            learning_rate_decay: 0.99,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            clip_grad_norm: Some(1.0),
            layers: 2,
            hidden_size: 256,
            nade_hidden_size: 0,
            dropout: 0.5,
            patience: 20,
            validation_fraction: 0.15,
            seed: 1,
            grid: Grid::Quarter,
        };
        match self {
            Preset::PianorollLstm => roll,
            Preset::PianorollNade => Hyperparameters { nade_hidden_size: 150, ..roll },
        }
    }

    pub fn roll_network(self, hp: &Hyperparameters) -> RollNetConfig {
        let output = match self {
            Preset::PianorollLstm => RollOutput::Independent,
            Preset::PianorollNade => RollOutput::Nade { hidden: hp.nade_hidden_size },
        };
        RollNetConfig { hidden: hp.hidden_size, layers: hp.layers, dropout: hp.dropout, output }
    }
}

impl Hyperparameters {
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            clip_grad_norm: self.clip_grad_norm,
        }
    }

    pub fn fit(&self) -> FitConfig {
        FitConfig {
            epochs: self.epochs,
            patience: self.patience,
            seed: self.seed,
            learning_rate_decay: self.learning_rate_decay,
        }
    }
}
