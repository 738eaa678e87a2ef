//! A bounded local cache of bundles (model artifacts) on a generation node:
//! libtorch loads models from local paths, the store may be S3.
//!
//! A bundle is fetched on first use into a staging directory, each file checked
//! against the manifest's hash, the manifest written last, and the directory
//! renamed into place: a directory of the cache with a manifest is whole. Past
//! `max_bytes`, the least recently used bundles are removed (use touches the
//! manifest's modification time).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;

use super::{MANIFEST, Manifest, Objects};

#[derive(Clone, Debug)]
pub struct BundleCache {
    objects: Objects,
    dir: PathBuf,
    max_bytes: u64,
}

impl BundleCache {
    pub fn new(objects: Objects, dir: PathBuf, max_bytes: u64) -> BundleCache {
        BundleCache { objects, dir, max_bytes }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The local directory holding the bundle at `prefix` (cached as `name`),
    /// fetched when it is not cached; `None` when the store has no such bundle.
    pub async fn fetch(&self, prefix: &str, name: &str) -> anyhow::Result<Option<PathBuf>> {
        let local = self.dir.join(name);
        if local.join(MANIFEST).is_file() {
            touch(&local.join(MANIFEST));
            return Ok(Some(local));
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let staging = tempfile::Builder::new().prefix(".fetch-").tempdir_in(&self.dir)?;
        let Some(manifest) = self.objects.get_bundle(prefix, staging.path()).await? else { return Ok(None) };
        super::write_file(&staging.path().join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?).await?;
        let staged = staging.keep();
        std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        if let Err(error) = std::fs::rename(&staged, &local) {
            // Another request fetched it meanwhile: theirs is as good.
            let _ = std::fs::remove_dir_all(&staged);
            if !local.join(MANIFEST).is_file() {
                return Err(anyhow::Error::from(error).context(format!("placing {}", local.display())));
            }
        }
        tracing::info!(bundle = prefix, bytes = manifest.bytes(), "fetched into the local cache");
        self.evict(name);
        Ok(Some(local))
    }

    /// Drops a bundle from the cache (its model was deleted).
    pub fn forget(&self, name: &str) {
        let local = self.dir.join(name);
        if local.exists() {
            let aside = self.dir.join(format!(".gone-{}", uuid::Uuid::new_v4().simple()));
            if std::fs::rename(&local, &aside).is_ok() {
                let _ = std::fs::remove_dir_all(aside);
            }
        }
    }

    /// Removes the least recently used bundles, never `keep`, until the cache
    /// holds at most `max_bytes`.
    fn evict(&self, keep: &str) {
        let mut entries: Vec<(SystemTime, u64, String)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let manifest_path = entry.path().join(MANIFEST);
                let used = manifest_path.metadata().and_then(|meta| meta.modified()).ok()?;
                let manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).ok()?).ok()?;
                Some((used, manifest.bytes(), name))
            })
            .collect();
        entries.sort();
        let mut total: u64 = entries.iter().map(|(_, bytes, _)| bytes).sum();
        for (_, bytes, name) in entries {
            if total <= self.max_bytes {
                break;
            }
            if name != keep {
                tracing::info!(bundle = %name, bytes, "evicted from the local cache");
                self.forget(&name);
                total -= bytes;
            }
        }
    }
}

fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}
