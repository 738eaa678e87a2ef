//! Content-addressed file storage in the object store: `blobs/sha256/ab/abcd….mid`.
//! A file uploaded twice, in one dataset or many, is stored once; datasets and
//! compositions share the store, so a blob may be referenced by both.

use std::sync::Arc;

use anyhow::Context;

use crate::objects::Objects;

/// Ten minutes: far longer than a writer takes from marking its blobs to
/// committing the rows that reference them (a request times out in 30 s).
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct BlobStore {
    objects: Objects,
    /// How long a blob stays after its last reference went (or a writer marked
    /// it) before a collector may remove it; see `store::blobs`.
    grace: std::time::Duration,
    /// Held from writing blobs until their rows exist, and from deleting rows until
    /// their orphaned blobs are gone, so that a deletion never removes a blob a row
    /// is about to reference in this process; across processes and nodes, marks
    /// in the database and a grace period do (`Datasets::collect_garbage`).
    writes: Arc<tokio::sync::Mutex<()>>,
}

impl BlobStore {
    pub fn new(objects: Objects) -> BlobStore {
        BlobStore { objects, grace: DEFAULT_GRACE, writes: Arc::default() }
    }

    pub fn with_grace(self, grace: std::time::Duration) -> BlobStore {
        BlobStore { grace, ..self }
    }

    /// The lock every writer of blobs and rows, and every deleter, holds.
    pub async fn lock_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    fn key(hash: &str) -> String {
        // Hashes are made by sha256_hex, never taken from a request: no path tricks.
        debug_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
        format!("blobs/sha256/{}/{hash}.mid", &hash[..2])
    }

    /// Stores the bytes under their hash, once: a blob already there is not
    /// written again. A reader never sees part of one (see `objects`). Returns
    /// whether this call created the blob.
    pub async fn put(&self, hash: &str, bytes: Vec<u8>) -> anyhow::Result<bool> {
        self.objects.put_once(&BlobStore::key(hash), bytes).await
    }

    pub async fn get(&self, hash: &str) -> anyhow::Result<Vec<u8>> {
        self.objects.get(&BlobStore::key(hash)).await?.with_context(|| format!("blob {hash} is missing"))
    }

    pub fn grace(&self) -> std::time::Duration {
        self.grace
    }

    pub async fn remove(&self, hash: &str) -> anyhow::Result<()> {
        self.objects.delete(&BlobStore::key(hash)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sha256_hex;

    use std::path::{Path, PathBuf};

    #[tokio::test]
    async fn stores_once_reads_back_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(Objects::local(dir.path()).unwrap());
        let hash = sha256_hex(b"MThd");
        assert!(blobs.put(&hash, b"MThd".to_vec()).await.unwrap());
        assert!(!blobs.put(&hash, b"MThd".to_vec()).await.unwrap());
        assert_eq!(blobs.get(&hash).await.unwrap(), b"MThd");
        assert!(dir.path().join("blobs/sha256").join(&hash[..2]).join(format!("{hash}.mid")).is_file());
        blobs.remove(&hash).await.unwrap();
        blobs.remove(&hash).await.unwrap();
        assert!(blobs.get(&hash).await.is_err());
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
