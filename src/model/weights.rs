//! Weights on disk: safetensors files and small JSON files, each written through a
//! temp file in the same directory and renamed into place, so a reader never sees
//! half of one. Model artifacts and training checkpoints both use these.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use tch::Tensor;
use tch::nn::VarStore;

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
