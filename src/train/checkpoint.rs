//! Checkpoints: after every epoch, the weights, the optimizer's moments and the
//! run's bookkeeping, each file written atomically; and the best weights so far.
//!
//! The state file is the commit point. Tensor files carry their epoch in their
//! name (`checkpoint-3.safetensors`, `best-2.safetensors`) and the state names the
//! ones it goes with, so a run killed between writing an epoch's tensors and its
//! state resumes from the previous epoch whole, never from one epoch's bookkeeping
//! with the next one's weights. Files the state no longer names go after it is written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

use super::EpochMetrics;
use crate::model::optim::Optimizer;
use crate::model::weights::{copy_into, named_variables, read_tensors, write_atomically, write_tensors};

pub const STATE_FILE: &str = "checkpoint.json";
/// What checkpoints written before the files were named by epoch called them.
const UNNUMBERED_TENSORS_FILE: &str = "checkpoint.safetensors";
const UNNUMBERED_BEST_FILE: &str = "best.safetensors";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub next_epoch: u32,
    pub history: Vec<EpochMetrics>,
    pub best_epoch: u32,
    pub best_valid_loss: f64,
    pub epochs_since_best: u32,
    pub learning_rate: f64,
    /// Times the run went back to its best weights at a lower rate.
    #[serde(default)]
    pub learning_rate_drops: u32,
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
            learning_rate_drops: 0,
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
        let tensors = read_tensors(&state.tensors_path(dir))?;
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

    /// Whether `patience` epochs (at least one) have passed without a better
    /// validation loss.
    pub fn out_of_patience(&self, patience: u32) -> bool {
        self.epochs_since_best >= patience.max(1)
    }

    /// Keeps `vs`'s weights as the best so far (after [`Checkpoint::record`] made
    /// its epoch the best; [`Checkpoint::save`] then commits it).
    pub fn save_best(&self, dir: &Path, vs: &VarStore) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_tensors(&dir.join(self.best_file()), &named_variables(vs))
    }

    /// Everything a resumed run needs: weights, optimizer state, bookkeeping.
    pub fn save(&self, dir: &Path, vs: &VarStore, optimizer: &Optimizer) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut everything = named_variables(vs);
        everything.extend(optimizer.state());
        write_tensors(&dir.join(self.tensors_file()), &everything)?;
        write_atomically(&dir.join(STATE_FILE), serde_json::to_string_pretty(self)?.as_bytes())?;
        self.remove_unnamed_tensors(dir)
    }

    /// Puts the best epoch's weights back into `vs`.
    pub fn restore_best(&self, dir: &Path, vs: &VarStore) -> anyhow::Result<()> {
        let best = self.best_path(dir);
        if best.exists() { copy_into(vs, &read_tensors(&best)?) } else { Ok(()) }
    }

    /// The weights and optimizer state after the last recorded epoch.
    fn tensors_file(&self) -> String {
        format!("checkpoint-{}.safetensors", self.next_epoch.saturating_sub(1))
    }

    fn best_file(&self) -> String {
        format!("best-{}.safetensors", self.best_epoch)
    }

    fn tensors_path(&self, dir: &Path) -> PathBuf {
        numbered_or_older(dir, &self.tensors_file(), UNNUMBERED_TENSORS_FILE)
    }

    fn best_path(&self, dir: &Path) -> PathBuf {
        numbered_or_older(dir, &self.best_file(), UNNUMBERED_BEST_FILE)
    }

    /// Removes tensor files this state does not name: an earlier epoch's, or the
    /// leftovers of a save that was cut short.
    fn remove_unnamed_tensors(&self, dir: &Path) -> anyhow::Result<()> {
        let named = [self.tensors_path(dir), self.best_path(dir)];
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|extension| extension == "safetensors") && !named.contains(&path)
            {
                std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// `dir/numbered`, unless only a checkpoint from before the numbering is there
/// (a job that was training when fugue was upgraded).
fn numbered_or_older(dir: &Path, numbered: &str, unnumbered: &str) -> PathBuf {
    let (numbered, unnumbered) = (dir.join(numbered), dir.join(unnumbered));
    if !numbered.exists() && unnumbered.exists() { unnumbered } else { numbered }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor, nn};

    use super::*;
    use crate::model::optim::{OptimizerConfig, OptimizerKind};

    fn metrics(epoch: u32) -> EpochMetrics {
        serde_json::from_value(serde_json::json!({"epoch": epoch, "train_loss": 1.0, "valid_loss": 1.0,
            "samples_per_second": 1.0, "learning_rate": 0.1, "seconds": 1.0}))
        .unwrap()
    }

    fn set_weights(vs: &VarStore, value: f64) {
        tch::no_grad(|| vs.variables().values_mut().for_each(|tensor| _ = tensor.fill_(value)));
    }

    fn adam() -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_grad_norm: None,
            weight_averaging: 0.0,
        }
    }

    fn one_weight(value: f64) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let _weight = vs.root().var("w", &[3], nn::Init::Const(value));
        vs
    }

    fn holds(vs: &VarStore, value: f64) -> bool {
        vs.variables()["w"].equal(&Tensor::full([3], value, (Kind::Float, Device::Cpu)))
    }

    /// A run killed after an epoch's tensors were written but before its state was
    /// resumes from the epoch before, tensors and state alike.
    #[test]
    fn a_save_cut_short_before_its_state_leaves_the_previous_epoch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let vs = one_weight(1.0);
        let optimizer = Optimizer::new(&vs, adam());
        let mut state = Checkpoint::fresh(0.1);
        state.record(metrics(1));
        state.save(dir.path(), &vs, &optimizer).unwrap();
        let saved_state = std::fs::read(dir.path().join(STATE_FILE)).unwrap();

        // Epoch 2: new weights, and a state write that fails (a directory is in its way).
        set_weights(&vs, 2.0);
        state.record(metrics(2));
        std::fs::remove_file(dir.path().join(STATE_FILE)).unwrap();
        std::fs::create_dir(dir.path().join(STATE_FILE)).unwrap();
        assert!(state.save(dir.path(), &vs, &optimizer).is_err());
        std::fs::remove_dir(dir.path().join(STATE_FILE)).unwrap();
        std::fs::write(dir.path().join(STATE_FILE), saved_state).unwrap();

        set_weights(&vs, 0.0);
        let loaded = Checkpoint::load(dir.path(), &vs, &mut Optimizer::new(&vs, adam())).unwrap().unwrap();
        assert_eq!(loaded.next_epoch, 2);
        assert!(holds(&vs, 1.0), "{}", vs.variables()["w"]);
    }

    /// A job that was training when fugue was upgraded resumes from its checkpoint
    /// of unnumbered files, best weights included.
    #[test]
    fn a_checkpoint_from_before_the_numbering_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let vs = one_weight(1.0);
        let mut state = Checkpoint::fresh(0.1);
        state.record(metrics(1));
        state.save_best(dir.path(), &vs).unwrap();
        state.save(dir.path(), &vs, &Optimizer::new(&vs, adam())).unwrap();
        for (numbered, unnumbered) in
            [(state.tensors_file(), UNNUMBERED_TENSORS_FILE), (state.best_file(), UNNUMBERED_BEST_FILE)]
        {
            std::fs::rename(dir.path().join(numbered), dir.path().join(unnumbered)).unwrap();
        }

        let resumed = one_weight(0.0);
        let mut optimizer = Optimizer::new(&resumed, adam());
        let mut state = Checkpoint::load(dir.path(), &resumed, &mut optimizer).unwrap().unwrap();
        assert!(holds(&resumed, 1.0));
        // Epoch 2 is worse: the best stays the unnumbered file, and survives the save.
        set_weights(&resumed, 2.0);
        state.record(EpochMetrics { valid_loss: 5.0, ..metrics(2) });
        state.save(dir.path(), &resumed, &optimizer).unwrap();
        assert!(!dir.path().join(UNNUMBERED_TENSORS_FILE).exists(), "replaced by epoch 2's");
        state.restore_best(dir.path(), &resumed).unwrap();
        assert!(holds(&resumed, 1.0), "{}", resumed.variables()["w"]);
    }
}
