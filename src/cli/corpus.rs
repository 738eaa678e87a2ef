//! Where `fugue train` takes its data from: a folder, a benchmark JSON, or an
//! uploaded dataset read from the store.

use std::path::Path;

use anyhow::{Context, bail};

use crate::cli::args::TrainArgs;
use crate::datasets::{self, BlobStore, Datasets, IngestLimits, folder_uploads};
use crate::model::artifact::Corpus;
use crate::store::Store;
use crate::train::data::{TrainingData, TrainingFile};

pub fn training_data(args: &TrainArgs) -> anyhow::Result<TrainingData> {
    match (&args.data, &args.dataset) {
        (Some(json), _) if json.extension().is_some_and(|ext| ext == "json") => {
            Ok(TrainingData::Benchmark(json.clone()))
        }
        (Some(folder), _) => folder_data(folder),
        (None, Some(id)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let store = Store::open(&args.storage.settings().database_url()).await?;
                let blobs = BlobStore::new(args.storage.settings().objects()?);
                let datasets = Datasets::new(store.clone(), blobs, IngestLimits::default());
                let data = datasets.training_data(id).await?.with_context(|| format!("no dataset `{id}`"));
                store.close().await;
                data
            })
        }
        (None, None) => bail!("--data or --dataset is required"),
    }
}

/// A folder of MIDI files (and zips) as `fugue train --data` reads it.
pub fn folder_data(folder: &Path) -> anyhow::Result<TrainingData> {
    let uploads = folder_uploads(folder).with_context(|| format!("reading {}", folder.display()))?;
    let ingested = datasets::ingest(uploads, false, &IngestLimits::default())?;
    let files = ingested
        .files
        .into_iter()
        .map(|(file, bytes)| TrainingFile { sha256: file.sha256, name: file.file, bytes })
        .collect();
    let source = Corpus::Path(folder.display().to_string());
    Ok(TrainingData::files(files, false, source))
}
