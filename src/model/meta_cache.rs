//! Parsed `meta.json` files, kept so that a generation request does not read and
//! parse its model's on every start (about half a millisecond of a fast
//! session's first note).
//!
//! An entry is used while its file is the same one: an artifact is replaced by
//! renaming a new directory into place, which gives `meta.json` a new inode, and
//! `fugue evaluate` rewrites it atomically the same way.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::artifact::{ArtifactMeta, META_FILE, load_meta};
use crate::shared::LockSurvivingPanics;

/// Models whose metadata is kept; past it the cache starts over (each entry is
/// one model's few kilobytes, and a server rarely serves more models than this).
const MAX_ENTRIES: usize = 256;

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified_ns: i64,
    len: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let metadata = std::fs::metadata(path)?;
        Ok(FileStamp {
            inode: metadata.ino(),
            modified_ns: metadata.mtime() * 1_000_000_000 + metadata.mtime_nsec(),
            len: metadata.len(),
        })
    }
}

/// Each model directory's metadata, as read from its file of that stamp.
type Entries = HashMap<PathBuf, (FileStamp, Arc<ArtifactMeta>)>;

#[derive(Clone, Default)]
pub struct MetaCache(Arc<Mutex<Entries>>);

impl MetaCache {
    /// The artifact's metadata in `dir`, read again when its file has changed.
    pub async fn get(&self, dir: &Path) -> anyhow::Result<Arc<ArtifactMeta>> {
        // A stat is cheap enough to make on the runtime; a read and parse is not.
        let stamp = FileStamp::of(&dir.join(META_FILE)).ok();
        if let Some(stamp) = stamp
            && let Some((seen, meta)) = self.entries().get(dir)
            && *seen == stamp
        {
            return Ok(meta.clone());
        }
        let meta = Arc::new(load_meta(dir.to_owned()).await?);
        if let Some(stamp) = stamp {
            let mut entries = self.entries();
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(dir.to_owned(), (stamp, meta.clone()));
        }
        Ok(meta)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock_surviving_panics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::artifact::{read_meta, rewrite_meta};

    #[tokio::test]
    async fn a_model_s_metadata_is_read_once_and_again_when_its_file_is_replaced() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&root).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        let cache = MetaCache::default();
        let first = cache.get(dir.path()).await.unwrap();
        let again = cache.get(dir.path()).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the second read is the cached one");

        let mut changed = read_meta(dir.path()).unwrap();
        changed.created_at = "2026-12-06T00:00:00Z".to_owned();
        rewrite_meta(dir.path(), &changed).unwrap();
        let after = cache.get(dir.path()).await.unwrap();
        assert_eq!(after.created_at, "2026-12-06T00:00:00Z", "a replaced file is read again");

        std::fs::remove_file(dir.path().join(META_FILE)).unwrap();
        assert!(cache.get(dir.path()).await.is_err(), "a removed file is an error, not the cached copy");
    }

    #[tokio::test]
    async fn the_cache_keeps_at_most_its_bound_of_models() {
        let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default").join(META_FILE);
        let root = tempfile::tempdir().unwrap();
        let cache = MetaCache::default();
        for model in 0..=MAX_ENTRIES {
            let dir = root.path().join(model.to_string());
            std::fs::create_dir(&dir).unwrap();
            std::fs::copy(&meta, dir.join(META_FILE)).unwrap();
            cache.get(&dir).await.unwrap();
            assert!(cache.entries().len() <= MAX_ENTRIES, "{} entries", cache.entries().len());
        }
        assert_eq!(cache.entries().len(), 1, "full, it started over with the newest");
    }
}
