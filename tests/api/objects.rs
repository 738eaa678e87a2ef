//! The object storage suite, run against the local filesystem and against an
//! S3-compatible server (moto): blobs written once, bundles (models, checkpoints)
//! visible only whole, the local model cache checked against hashes and bounded.

use std::path::Path;

use fugue::datasets::BlobStore;
use fugue::objects::{BundleCache, MANIFEST, Objects};
use fugue::shared::sha256_hex;

use crate::support::{s3_bucket, s3_env};

/// Runs `suite` on a store in a temp dir, then on a fresh S3 bucket.
async fn each_store<F, Fut>(suite: F)
where
    F: Fn(Objects, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    suite(Objects::local(dir.path()).unwrap(), "filesystem").await;
    let options: Vec<(String, String)> =
        s3_env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let s3 = Objects::open_with(Some(&s3_bucket().await), dir.path(), &options).unwrap();
    suite(s3, "s3").await;
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[tokio::test]
async fn objects_round_trip_and_missing_ones_are_none() {
    each_store(|objects, backend| async move {
        assert_eq!(objects.get("a/b.bin").await.unwrap(), None, "{backend}");
        objects.put("a/b.bin", b"one".to_vec()).await.unwrap();
        objects.put("a/c.bin", b"two".to_vec()).await.unwrap();
        assert_eq!(objects.get("a/b.bin").await.unwrap().as_deref(), Some(&b"one"[..]), "{backend}");
        objects.put("a/b.bin", b"three".to_vec()).await.unwrap();
        assert_eq!(objects.get("a/b.bin").await.unwrap().as_deref(), Some(&b"three"[..]), "{backend}");
        let listed = objects.list("a").await.unwrap();
        assert_eq!(listed, [("a/b.bin".to_owned(), 5), ("a/c.bin".to_owned(), 3)], "{backend}");
        assert!(objects.list("nothing").await.unwrap().is_empty(), "{backend}");
        objects.delete("a/b.bin").await.unwrap();
        objects.delete("a/b.bin").await.unwrap();
        assert!(!objects.exists("a/b.bin").await.unwrap(), "{backend}");
    })
    .await;
}

#[tokio::test]
async fn content_addressed_blobs_are_written_once() {
    each_store(|objects, backend| async move {
        let blobs = BlobStore::new(objects.clone());
        let hash = sha256_hex(b"MThd");
        assert!(blobs.put(&hash, b"MThd".to_vec()).await.unwrap(), "{backend}: the first write creates it");
        assert!(!blobs.put(&hash, b"MThd".to_vec()).await.unwrap(), "{backend}: the second finds it there");
        assert_eq!(blobs.get(&hash).await.unwrap(), b"MThd");
        let key = format!("blobs/sha256/{}/{hash}.mid", &hash[..2]);
        assert_eq!(objects.list("blobs").await.unwrap(), [(key, 4)], "{backend}: one object, at its hash");
        blobs.remove(&hash).await.unwrap();
        assert!(blobs.get(&hash).await.is_err(), "{backend}");
    })
    .await;
}

#[tokio::test]
async fn a_bundle_is_invisible_until_its_manifest_and_read_only_whole() {
    each_store(|objects, backend| async move {
        let source = tempfile::tempdir().unwrap();
        write(source.path(), "weights.safetensors", b"weights");
        write(source.path(), "meta.json", b"{}");
        write(source.path(), ".tmp-half", b"being written");
        // Files without their manifest: no bundle yet (a writer that died half way).
        objects.put("models/m/weights.safetensors", b"weights".to_vec()).await.unwrap();
        let into = tempfile::tempdir().unwrap();
        assert!(objects.get_bundle("models/m", &into.path().join("m")).await.unwrap().is_none(), "{backend}");

        let manifest = objects.put_bundle("models/m", source.path()).await.unwrap();
        let names: Vec<&str> = manifest.files.iter().map(|file| file.name.as_str()).collect();
        assert_eq!(names, ["meta.json", "weights.safetensors"], "{backend}: dot files are not part of it");
        let got = objects.get_bundle("models/m", &into.path().join("m")).await.unwrap().unwrap();
        assert_eq!(got, manifest);
        assert_eq!(std::fs::read(into.path().join("m/weights.safetensors")).unwrap(), b"weights");

        // A file that does not match the manifest is refused, not served.
        objects.put("models/m/weights.safetensors", b"weightz".to_vec()).await.unwrap();
        let error = objects.get_bundle("models/m", &into.path().join("again")).await.unwrap_err();
        assert!(format!("{error:#}").contains("does not match its manifest"), "{backend}: {error:#}");

        // Deleting takes the manifest first: the bundle is gone for readers.
        objects.delete_bundle("models/m").await.unwrap();
        assert!(objects.manifest("models/m").await.unwrap().is_none(), "{backend}");
        assert!(objects.list("models/m").await.unwrap().is_empty(), "{backend}");
    })
    .await;
}

/// A checkpoint bundle rewritten every epoch: the files only the old manifest
/// named go, unchanged files are not uploaded again, and readers see either.
#[tokio::test]
async fn rewriting_a_bundle_replaces_it_and_drops_what_it_no_longer_names() {
    each_store(|objects, backend| async move {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "checkpoint-1.safetensors", b"epoch 1");
        write(dir.path(), "best-1.safetensors", b"best 1");
        write(dir.path(), "checkpoint.json", br#"{"next_epoch": 2}"#);
        objects.put_bundle("checkpoints/j", dir.path()).await.unwrap();
        std::fs::remove_file(dir.path().join("checkpoint-1.safetensors")).unwrap();
        write(dir.path(), "checkpoint-2.safetensors", b"epoch 2");
        write(dir.path(), "checkpoint.json", br#"{"next_epoch": 3}"#);
        objects.put_bundle("checkpoints/j", dir.path()).await.unwrap();
        let keys: Vec<String> =
            objects.list("checkpoints/j").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "checkpoints/j/best-1.safetensors",
                "checkpoints/j/checkpoint-2.safetensors",
                "checkpoints/j/checkpoint.json",
                "checkpoints/j/manifest.json"
            ],
            "{backend}"
        );
        let resumed = tempfile::tempdir().unwrap();
        objects.get_bundle("checkpoints/j", resumed.path()).await.unwrap().unwrap();
        assert_eq!(std::fs::read(resumed.path().join("checkpoint.json")).unwrap(), br#"{"next_epoch": 3}"#);
    })
    .await;
}

#[tokio::test]
async fn the_model_cache_fetches_once_checks_hashes_and_stays_bounded() {
    each_store(|objects, backend| async move {
        let source = tempfile::tempdir().unwrap();
        for model in ["a", "b", "c"] {
            write(&source.path().join(model), "weights.safetensors", &[model.as_bytes()[0]; 400]);
            objects.put_bundle(&format!("models/{model}"), &source.path().join(model)).await.unwrap();
        }
        let cache_dir = tempfile::tempdir().unwrap();
        // Room for two models of 400 bytes (and their manifests' sizes are not counted).
        let cache = BundleCache::new(objects.clone(), cache_dir.path().to_owned(), 800);
        let a = cache.fetch("models/a", "a").await.unwrap().unwrap();
        assert_eq!(std::fs::read(a.join("weights.safetensors")).unwrap(), [b'a'; 400]);
        assert!(a.join(MANIFEST).is_file());
        // Cached: served locally even once the store has lost it.
        objects.delete("models/a/weights.safetensors").await.unwrap();
        assert_eq!(cache.fetch("models/a", "a").await.unwrap().unwrap(), a, "{backend}");
        assert!(cache.fetch("models/none", "none").await.unwrap().is_none(), "{backend}");

        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.fetch("models/b", "b").await.unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.fetch("models/c", "c").await.unwrap().unwrap();
        let mut cached: Vec<String> = std::fs::read_dir(cache_dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        cached.sort();
        assert_eq!(cached, ["b", "c"], "{backend}: the least recently used went");

        // A file altered in the store after its manifest was written is refused.
        objects.put("models/a/weights.safetensors", vec![b'x'; 400]).await.unwrap();
        let error = cache.fetch("models/a", "a").await.unwrap_err();
        assert!(format!("{error:#}").contains("does not match its manifest"), "{backend}: {error:#}");
        assert!(!cache_dir.path().join("a").exists(), "{backend}: nothing half-fetched is left as the model");
    })
    .await;
}

/// Models and checkpoints stored before bundles had manifests (a directory
/// renamed into place under the data dir) are adopted as they are.
#[tokio::test]
async fn files_stored_before_manifests_are_adopted_whole() {
    each_store(|objects, backend| async move {
        objects.put("models/old/model.safetensors", b"weights".to_vec()).await.unwrap();
        objects.put("models/old/meta.json", b"{}".to_vec()).await.unwrap();
        assert!(objects.manifest("models/old").await.unwrap().is_none());
        assert!(objects.adopt_bundle("models/old").await.unwrap(), "{backend}");
        let into = tempfile::tempdir().unwrap();
        let manifest = objects.get_bundle("models/old", into.path()).await.unwrap().unwrap();
        assert_eq!(manifest.files.len(), 2, "{backend}");
        assert_eq!(std::fs::read(into.path().join("model.safetensors")).unwrap(), b"weights");
        assert!(!objects.adopt_bundle("models/none").await.unwrap(), "{backend}: nothing to adopt");
    })
    .await;
}

/// Two writers of the same new blob at once: one writes it, the other finds it.
#[tokio::test]
async fn of_two_writers_racing_on_one_blob_exactly_one_writes_it() {
    each_store(|objects, backend| async move {
        let key = "blobs/sha256/ab/race.mid";
        // Past the existence check both would write; the conditional write decides.
        let (first, second) =
            tokio::join!(objects.put_once(key, b"same".to_vec()), objects.put_once(key, b"same".to_vec()));
        let created = [first.unwrap(), second.unwrap()];
        assert_eq!(created.iter().filter(|created| **created).count(), 1, "{backend}: {created:?}");
        assert_eq!(objects.get(key).await.unwrap().as_deref(), Some(&b"same"[..]));
    })
    .await;
}
