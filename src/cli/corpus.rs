//! Where training data comes from: a folder, an uploaded dataset, a benchmark JSON;
//! and the split by file.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{StorageArgs, TrainArgs};
use crate::datasets::{self, BlobStore, IngestLimits, folder_uploads, sha256_hex};
use crate::midi::{self, Score};
use crate::model::artifact::DataSource;
use crate::model::sampling::Rng;
use crate::repr::pianoroll::{BenchmarkSplits, Frame};
use crate::store::Store;

/// The scores to train on, drums left out, and what identifies them: a local
/// folder, or an uploaded dataset from the store.
pub fn corpus(args: &TrainArgs) -> anyhow::Result<(Vec<Score>, DataSource)> {
    let (files, include_drums, source) = match (&args.data, &args.dataset) {
        (Some(folder), _) => {
            let uploads = folder_uploads(folder).with_context(|| format!("reading {}", folder.display()))?;
            let ingested = datasets::ingest(uploads, false, &IngestLimits::default())?;
            let files: Vec<(String, Vec<u8>)> =
                ingested.files.into_iter().map(|(file, bytes)| (file.sha256, bytes)).collect();
            (files, false, folder.display().to_string())
        }
        (None, Some(id)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (files, include_drums) = runtime.block_on(dataset_files(&args.storage, id))?;
            (files, include_drums, format!("dataset {id}"))
        }
        (None, None) => bail!("--data or --dataset is required"),
    };
    let hashes: Vec<&str> = files.iter().map(|(hash, _)| hash.as_str()).collect();
    let source = DataSource { source, sha256: sha256_hex(hashes.join("\n").as_bytes()) };
    let scores = files
        .iter()
        .map(|(_, bytes)| {
            let mut score = midi::read(bytes)?;
            score.parts.retain(|part| include_drums || !part.is_drum);
            Ok(score)
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((scores, source))
}

/// An uploaded dataset's files (hash and bytes), and whether it keeps drums.
async fn dataset_files(storage: &StorageArgs, id: &str) -> anyhow::Result<(Vec<(String, Vec<u8>)>, bool)> {
    let store = Store::open(&storage.database_url()).await?;
    let dataset = store.dataset(id).await?.with_context(|| format!("no dataset `{id}`"))?;
    let blobs = BlobStore::new(&storage.data_dir);
    let files = store
        .dataset_files(id)
        .await?
        .into_iter()
        .map(|file| {
            Ok((file.sha256.clone(), blobs.get(&file.sha256).with_context(|| file.file_name.clone())?))
        })
        .collect::<anyhow::Result<_>>()?;
    store.close().await;
    Ok((files, dataset.include_drums))
}

pub type Sequences = (Vec<Vec<Frame>>, Vec<Vec<Frame>>);

/// A benchmark JSON's own training and validation splits.
pub fn benchmark_splits(json: &Path) -> anyhow::Result<(Sequences, DataSource)> {
    let bytes = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
    let splits = BenchmarkSplits::load(json)?;
    let source = DataSource { source: json.display().to_string(), sha256: sha256_hex(&bytes) };
    Ok(((splits.train, splits.valid), source))
}

/// Holds out `fraction` of the files (at least one), chosen by a seeded shuffle.
pub fn split_by_file<T>(items: Vec<T>, fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let held_out =
        ((items.len() as f64 * fraction).round() as usize).clamp(1, items.len().saturating_sub(1).max(1));
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut take = |indices: &[usize]| indices.iter().filter_map(|&i| slots[i].take()).collect::<Vec<T>>();
    let valid = take(&order[..held_out]);
    let train = take(&order[held_out..]);
    (train, valid)
}
