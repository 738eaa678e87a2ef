//! Checkpoints: after every epoch, the weights, the optimizer's moments and the
//! run's bookkeeping, each file written atomically; and the best weights so far.
//! The state file is written last, so it never points at tensors from another epoch.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

use super::EpochMetrics;
use crate::model::optim::Optimizer;
use crate::model::weights::{copy_into, named_variables, read_tensors, write_atomically, write_tensors};

const STATE_FILE: &str = "checkpoint.json";
const TENSORS_FILE: &str = "checkpoint.safetensors";
const BEST_FILE: &str = "best.safetensors";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub next_epoch: u32,
    pub history: Vec<EpochMetrics>,
    pub best_epoch: u32,
    pub best_valid_loss: f64,
    pub epochs_since_best: u32,
    pub learning_rate: f64,
}

impl Checkpoint {
    pub fn fresh(learning_rate: f64) -> Checkpoint {
        Checkpoint {
            next_epoch: 1,
            history: Vec::new(),
            best_epoch: 0,
            best_valid_loss: f64::INFINITY,
            epochs_since_best: 0,
            learning_rate,
        }
    }

    /// Restores weights and optimizer from `dir` when a checkpoint is there.
    pub fn load(dir: &Path, vs: &VarStore, optimizer: &mut Optimizer) -> anyhow::Result<Option<Checkpoint>> {
        let state_path = dir.join(STATE_FILE);
        if !state_path.exists() {
            return Ok(None);
        }
        let state: Checkpoint = serde_json::from_str(&std::fs::read_to_string(&state_path)?)
            .with_context(|| format!("reading {}", state_path.display()))?;
        let tensors = read_tensors(&dir.join(TENSORS_FILE))?;
        copy_into(vs, &tensors)?;
        optimizer.load_state(&tensors)?;
        Ok(Some(state))
    }

    /// Adds an epoch's metrics; true when they are the best so far.
    pub fn record(&mut self, metrics: EpochMetrics) -> bool {
        self.next_epoch = metrics.epoch + 1;
        let best = metrics.valid_loss < self.best_valid_loss;
        if best {
            self.best_valid_loss = metrics.valid_loss;
            self.best_epoch = metrics.epoch;
            self.epochs_since_best = 0;
        } else {
            self.epochs_since_best += 1;
        }
        self.history.push(metrics);
        best
    }

    /// Keeps `vs`'s weights as the best so far.
    pub fn save_best(&self, dir: &Path, vs: &VarStore) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_tensors(&dir.join(BEST_FILE), &named_variables(vs))
    }

    /// Everything a resumed run needs: weights, optimizer state, bookkeeping.
    pub fn save(&self, dir: &Path, vs: &VarStore, optimizer: &Optimizer) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut everything = named_variables(vs);
        everything.extend(optimizer.state());
        write_tensors(&dir.join(TENSORS_FILE), &everything)?;
        write_atomically(&dir.join(STATE_FILE), serde_json::to_string_pretty(self)?.as_bytes())
    }

    /// Puts the best epoch's weights back into `vs`.
    pub fn restore_best(&self, dir: &Path, vs: &VarStore) -> anyhow::Result<()> {
        let best = dir.join(BEST_FILE);
        if best.exists() { copy_into(vs, &read_tensors(&best)?) } else { Ok(()) }
    }
}
