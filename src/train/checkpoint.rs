//! Checkpoints: after every epoch, the weights, the optimizer's moments and the
//! run's bookkeeping, each file written atomically; and the best weights so far.
//! The state file is written last, so it never points at tensors from another epoch.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::VarStore;

use super::EpochMetrics;
use crate::model::optim::Optimizer;

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

pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let sorted: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    sorted.into_iter().collect()
}

pub fn read_tensors(path: &Path) -> anyhow::Result<BTreeMap<String, Tensor>> {
    let named = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(named.into_iter().collect())
}

/// Copies every variable of `vs` from `tensors`, naming any that is missing or
/// has another shape.
pub fn copy_into(vs: &VarStore, tensors: &BTreeMap<String, Tensor>) -> anyhow::Result<()> {
    tch::no_grad(|| {
        for (name, mut variable) in vs.variables() {
            let source = tensors.get(&name).with_context(|| format!("weights lack `{name}`"))?;
            anyhow::ensure!(
                source.size() == variable.size(),
                "`{name}` has shape {:?} in the file and {:?} in the model",
                source.size(),
                variable.size()
            );
            variable.copy_(source);
        }
        Ok(())
    })
}

/// Writes safetensors through a temp file in the same directory, then renames.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new().suffix(".safetensors").tempfile_in(directory_of(path))?;
    Tensor::write_safetensors(tensors, temp.path())?;
    persist(temp, path)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut temp = tempfile::NamedTempFile::new_in(directory_of(path))?;
    temp.write_all(bytes)?;
    persist(temp, path)
}

fn directory_of(path: &Path) -> &Path {
    path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Syncs and renames into place, readable by all (temp files start private), so a
/// model or song can be served or shipped by another user.
fn persist(temp: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}
