//! Content-addressed file storage under the data dir: `blobs/sha256/ab/abcd….mid`.
//! A file uploaded twice, in one dataset or many, is stored once; datasets and
//! compositions share the store, so a blob may be referenced by both.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Held from writing blobs until their rows exist, and from deleting rows until
    /// their orphaned blobs are gone, so that a deletion never removes a blob a row
    /// is about to reference (in this process; see the README's scaling section).
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> BlobStore {
        BlobStore { root: data_dir.join("blobs").join("sha256"), writes: Arc::default() }
    }

    /// The lock every writer of blobs and rows, and every deleter, holds.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    fn path(&self, hash: &str) -> PathBuf {
        // Hashes are made by sha256_hex, never taken from a request: no path tricks.
        debug_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        self.root.join(&hash[..2]).join(format!("{hash}.mid"))
    }

    /// Stores the bytes under their hash. Atomic: a temp file is written, synced and
    /// renamed into place, so a crash never leaves a partial blob. Returns whether
    /// this call created the blob (false when it already existed).
    pub fn put(&self, hash: &str, bytes: &[u8]) -> std::io::Result<bool> {
        let path = self.path(hash);
        if path.exists() {
            return Ok(false);
        }
        let dir = path.parent().expect("a blob path has a parent: this is a bug");
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|error| error.error)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(true)
    }

    pub fn get(&self, hash: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(hash))
    }

    /// Removes blobs no row references any more, on a blocking thread; a failure
    /// is logged (the blob is only wasted space) and the rest are still removed.
    pub async fn remove_unused(&self, hashes: Vec<String>) {
        let blobs = self.clone();
        let removing = tokio::task::spawn_blocking(move || {
            for hash in hashes {
                if let Err(error) = blobs.remove(&hash) {
                    tracing::warn!(%hash, %error, "could not remove an unused blob");
                }
            }
        });
        if let Err(error) = removing.await {
            tracing::warn!(%error, "removing unused blobs stopped");
        }
    }

    pub fn remove(&self, hash: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(hash)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sha256_hex;

    #[test]
    fn stores_once_reads_back_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let hash = sha256_hex(b"MThd");
        assert!(blobs.put(&hash, b"MThd").unwrap());
        assert!(!blobs.put(&hash, b"MThd").unwrap());
        assert_eq!(blobs.get(&hash).unwrap(), b"MThd");
        blobs.remove(&hash).unwrap();
        blobs.remove(&hash).unwrap();
        assert!(blobs.get(&hash).is_err());
        // Nothing but the blob directories is left behind.
        let leftovers: Vec<_> = walk(dir.path()).into_iter().filter(|p| p.is_file()).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .flat_map(|entry| {
                let path = entry.unwrap().path();
                if path.is_dir() { walk(&path) } else { vec![path] }
            })
            .collect()
    }
}
