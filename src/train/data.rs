//! What a run trains on: MIDI files (from a folder or an uploaded dataset) or a
//! piano-roll benchmark JSON; and the seeded split by file.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context;

use crate::midi::{self, Score};
use crate::model::artifact::{Corpus, DataSource};
use crate::model::sampling::Rng;
use crate::repr::pianoroll::{BenchmarkSplits, Frame};
use crate::shared::sha256_hex;

pub enum TrainingData {
    /// A benchmark JSON with its own `train` and `valid` splits (piano-roll presets).
    Benchmark(PathBuf),
    /// MIDI files in the dataset's order; made with [`TrainingData::files`].
    Files {
        files: Vec<TrainingFile>,
        include_drums: bool,
        source: Corpus,
        /// The files parsed, once: a search's trials each train on them.
        parsed: OnceLock<Vec<Score>>,
    },
}

/// One MIDI file of a corpus.
pub struct TrainingFile {
    pub sha256: String,
    /// As uploaded (a path, or `archive.zip/path`); its last part names the piece
    /// a copied run comes from.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl TrainingFile {
    /// The file name without its folders: what a copied run names.
    pub fn piece_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// A training split and a validation split.
pub type Sequences<T = Frame> = (Vec<Vec<T>>, Vec<Vec<T>>);

impl TrainingData {
    /// MIDI files in the dataset's order, to be parsed when first trained on.
    pub fn files(files: Vec<TrainingFile>, include_drums: bool, source: Corpus) -> TrainingData {
        TrainingData::Files { files, include_drums, source, parsed: OnceLock::new() }
    }

    /// The parsed scores (drums left out unless kept) and what identifies them.
    /// The files are parsed on the first call only.
    pub fn scores(&self) -> anyhow::Result<(Vec<Score>, DataSource)> {
        let TrainingData::Files { files, include_drums, source, parsed } = self else {
            anyhow::bail!("a benchmark JSON trains piano-roll presets only");
        };
        let hashes: Vec<&str> = files.iter().map(|file| file.sha256.as_str()).collect();
        let source = DataSource { source: source.clone(), sha256: sha256_hex(hashes.join("\n").as_bytes()) };
        if let Some(scores) = parsed.get() {
            return Ok((scores.clone(), source));
        }
        let scores: Vec<Score> = files
            .iter()
            .map(|file| {
                midi::read_usable(&file.bytes, *include_drums)
                    .with_context(|| format!("file {}", file.sha256))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((parsed.get_or_init(|| scores).clone(), source))
    }

    /// The files' bytes, in the order of [`TrainingData::scores`]; none for a benchmark.
    pub fn file_bytes(&self) -> Vec<&[u8]> {
        match self {
            TrainingData::Files { files, .. } => files.iter().map(|file| file.bytes.as_slice()).collect(),
            TrainingData::Benchmark(_) => Vec::new(),
        }
    }

    /// The pieces' names, in the order of [`TrainingData::scores`]; none for a benchmark.
    pub fn piece_names(&self) -> Vec<&str> {
        match self {
            TrainingData::Files { files, .. } => files.iter().map(TrainingFile::piece_name).collect(),
            TrainingData::Benchmark(_) => Vec::new(),
        }
    }

    /// The benchmark JSON's own training and validation splits, when it is one.
    pub fn benchmark_splits(&self) -> anyhow::Result<Option<(Sequences, DataSource)>> {
        let TrainingData::Benchmark(json) = self else { return Ok(None) };
        let bytes = std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
        let splits = BenchmarkSplits::load(json)?;
        let source =
            DataSource { source: Corpus::Path(json.display().to_string()), sha256: sha256_hex(&bytes) };
        Ok(Some(((splits.train, splits.valid), source)))
    }
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
