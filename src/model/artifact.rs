//! Model artifacts on disk: one directory per model under the models directory,
//! holding `meta.json` (what the model is and how it was trained) beside
//! `model.safetensors` (its weights), and `originality.json` (the training split's
//! notes, from which the originality index is built) when it was trained on MIDI
//! files.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tch::Device;
use tch::nn::VarStore;

use super::melody_net::{MelodyNet, MelodyNetConfig};
use super::roll_net::{RollNet, RollNetConfig};
use super::seq2seq_net::{Seq2Seq, Seq2SeqConfig};
use super::token_net::{FrozenTokenNet, TokenNet, TokenNetConfig};
use super::training_record::FitOutcome;
use super::weights::{copy_into, named_variables, read_tensors, write_atomically, write_tensors};
use crate::analysis::originality::{IndexedCorpus, OriginalityIndex};
use crate::analysis::statistics::{SetComparison, SetStatistics};
use crate::devices::WeightFormat;
use crate::repr::Vocabulary;
use crate::repr::events::{CorpusPart, EventsConfig};
use crate::repr::melody_chords::MelodyChordsConfig;
use crate::repr::note_chord::NoteChordConfig;
use crate::repr::pianoroll::Grid;
use crate::shared::Preset;

/// The file that makes a directory a model artifact.
pub const META_FILE: &str = "meta.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The training split's notes as the originality index reads them ([`IndexedCorpus`]).
pub const ORIGINALITY_FILE: &str = "originality.json";
/// Bumped when `meta.json` or the weight layout changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMeta {
    pub format: u32,
    pub fugue_version: String,
    /// RFC 3339.
    pub created_at: String,
    pub preset: Preset,
    pub representation: Representation,
    pub network: Network,
    /// The hyperparameters as trained, after defaults and overrides.
    pub hyperparameters: serde_json::Value,
    pub data: DataSource,
    pub training: FitOutcome,
    /// Scores on held-out data, by name (for example `test_nll`).
    pub evaluation: serde_json::Map<String, serde_json::Value>,
    /// The originality index stored beside it (`originality.json`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originality_index: Option<IndexSummary>,
    /// Musical statistics (MGEval-style) of the held-out files, when it was
    /// trained on MIDI files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out_statistics: Option<SetStatistics>,
    /// What `fugue evaluate` found: generated pieces against the held-out files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music_evaluation: Option<MusicEvaluation>,
    /// The hyperparameter search this model won, with every trial's best loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<super::search::SearchRecord>,
}

/// What an artifact's originality index holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IndexSummary {
    /// Training pieces indexed (the training split, never the held-out files).
    pub pieces: usize,
    /// Their notes, unisons merged.
    pub notes: usize,
}

/// Pieces the model generated (a run of seeds) against its held-out files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MusicEvaluation {
    /// Pieces generated, with seeds `first_seed` to `first_seed + pieces - 1`.
    pub pieces: usize,
    /// Notes asked of each piece.
    pub notes_per_piece: u32,
    /// The first piece's seed (1 in evaluations stored before seeds could be chosen).
    #[serde(default = "first_seed_before_it_was_chosen")]
    pub first_seed: u64,
    /// Histogram overlaps (1 = identical) and the two sets' mean features.
    pub comparison: SetComparison,
    /// The generated pieces' longest copied run (transposed), median and longest, in notes.
    pub median_copied_notes: Option<u32>,
    pub longest_copied_notes: Option<u32>,
}

fn first_seed_before_it_was_chosen() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Representation {
    Pianoroll {
        grid: Grid,
    },
    Events {
        config: EventsConfig,
        vocabulary: Vocabulary,
        /// With parts: every part of the training corpus, the most common first,
        /// for generation to offer. None without parts (and in older artifacts).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        parts: Vec<CorpusPart>,
    },
    NoteChord {
        config: NoteChordConfig,
        vocabulary: Vocabulary,
    },
    MelodyChords {
        config: MelodyChordsConfig,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Network {
    Roll(RollNetConfig),
    Token(TokenNetConfig),
    Melody(MelodyNetConfig),
    Seq2seq(Seq2SeqConfig),
}

/// What a model was trained on, and the content hash of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    pub source: Corpus,
    pub sha256: String,
}

/// Where a training corpus came from.
///
/// In `meta.json` it is one string, as artifacts have always written it: `dataset
/// <id>` for an uploaded dataset, anything else a local path. That spelling lives
/// only in this type's conversions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Corpus {
    /// An uploaded dataset, by id.
    Dataset(String),
    /// A folder of MIDI files or a benchmark JSON given to `fugue train`.
    Path(String),
}

const DATASET_PREFIX: &str = "dataset ";

impl From<String> for Corpus {
    fn from(source: String) -> Corpus {
        match source.strip_prefix(DATASET_PREFIX) {
            Some(id) => Corpus::Dataset(id.to_owned()),
            None => Corpus::Path(source),
        }
    }
}

impl From<Corpus> for String {
    fn from(corpus: Corpus) -> String {
        corpus.to_string()
    }
}

impl std::fmt::Display for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corpus::Dataset(id) => write!(f, "{DATASET_PREFIX}{id}"),
            Corpus::Path(path) => f.write_str(path),
        }
    }
}

impl DataSource {
    /// The uploaded dataset the model was trained on, when it was one.
    pub fn dataset_id(&self) -> Option<&str> {
        match &self.source {
            Corpus::Dataset(id) => Some(id),
            Corpus::Path(_) => None,
        }
    }
}

/// A loaded model, ready on its device.
pub struct LoadedModel {
    pub meta: ArtifactMeta,
    pub vs: VarStore,
    pub net: Net,
}

pub enum Net {
    Roll(RollNet),
    /// A loaded token network is only stepped: its weights are laid out for that.
    Token(FrozenTokenNet),
    Melody(MelodyNet),
    Seq2seq(Seq2Seq),
}

impl LoadedModel {
    /// The model in `dir` on `device`; a token network keeps its weights in
    /// `format` where that runs on `device`, else in fp32.
    pub fn load(dir: &Path, device: Device, format: WeightFormat) -> anyhow::Result<LoadedModel> {
        let meta = read_meta(dir)?;
        let vs = VarStore::new(device);
        let weights = read_tensors(&dir.join(WEIGHTS_FILE))?;
        // Each network declares its variables in `vs`, then they are read in; a
        // token network, which a loaded model only steps, is frozen with them.
        let fill = || {
            copy_into(&vs, &weights).with_context(|| format!("{} does not fit its meta.json", dir.display()))
        };
        let root = vs.root();
        let net = match &meta.network {
            Network::Roll(config) => {
                let net = RollNet::new(&root, config.clone());
                fill().map(|()| Net::Roll(net))
            }
            Network::Token(config) => {
                let net = TokenNet::new(&root, config.clone());
                fill().and_then(|()| Ok(Net::Token(net.frozen(format.on(device))?)))
            }
            Network::Melody(config) => {
                let net = MelodyNet::new(&root, config.clone());
                fill().map(|()| Net::Melody(net))
            }
            Network::Seq2seq(config) => {
                let net = Seq2Seq::new(&root, config.clone());
                fill().map(|()| Net::Seq2seq(net))
            }
        }?;
        Ok(LoadedModel { meta, vs, net })
    }
}

/// Reads and checks `meta.json`, naming what does not match this build.
/// [`read_meta`] on a blocking thread, for request paths on the async runtime.
pub async fn load_meta(dir: PathBuf) -> anyhow::Result<ArtifactMeta> {
    tokio::task::spawn_blocking(move || read_meta(&dir)).await?
}

pub fn read_meta(dir: &Path) -> anyhow::Result<ArtifactMeta> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let format = value.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if format != u64::from(FORMAT) {
        bail!("{} has artifact format {format}; this fugue reads format {FORMAT}", path.display());
    }
    serde_json::from_value(value)
        .with_context(|| format!("{} does not describe a model this fugue knows", path.display()))
}

/// Writes the artifact to `dir` atomically: everything goes into a temp directory
/// beside it, which is synced and renamed into place (replacing an older model).
pub fn save(
    dir: &Path,
    meta: &ArtifactMeta,
    vs: &VarStore,
    originality: Option<&IndexedCorpus>,
) -> anyhow::Result<()> {
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new().prefix(".artifact-").tempdir_in(parent)?;
    write_tensors(&staging.path().join(WEIGHTS_FILE), &named_variables(vs))?;
    if let Some(corpus) = originality {
        write_atomically(&staging.path().join(ORIGINALITY_FILE), &serde_json::to_vec(corpus)?)?;
    }
    write_atomically(&staging.path().join(META_FILE), serde_json::to_string_pretty(meta)?.as_bytes())?;
    std::fs::set_permissions(staging.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::File::open(staging.path())?.sync_all()?;
    let staged: PathBuf = staging.keep();
    if dir.exists() {
        let old = parent.join(format!(".replaced-{}", uuid::Uuid::new_v4().simple()));
        std::fs::rename(dir, &old)?;
        std::fs::rename(&staged, dir)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&staged, dir)?;
    }
    std::fs::File::open(parent)?.sync_all()?;
    Ok(())
}

/// Replaces the originality index and `meta.json` of an existing artifact, each
/// file atomically (the index first: a meta that names an index always has it).
pub fn store_originality(dir: &Path, meta: &ArtifactMeta, corpus: &IndexedCorpus) -> anyhow::Result<()> {
    write_atomically(&dir.join(ORIGINALITY_FILE), &serde_json::to_vec(corpus)?)?;
    rewrite_meta(dir, meta)
}

/// Replaces `meta.json` of an existing artifact atomically.
pub fn rewrite_meta(dir: &Path, meta: &ArtifactMeta) -> anyhow::Result<()> {
    write_atomically(&dir.join(META_FILE), serde_json::to_string_pretty(meta)?.as_bytes())
}

/// The artifact's originality index, built from its stored notes; None when the
/// artifact has none.
pub fn read_originality(dir: &Path) -> anyhow::Result<Option<OriginalityIndex>> {
    let path = dir.join(ORIGINALITY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let corpus: IndexedCorpus = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an originality index", path.display()))?;
    Ok(Some(corpus.index()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::roll_net::RollOutput;

    fn tiny(vs: &VarStore) -> ArtifactMeta {
        let config = RollNetConfig::plain(4, 1, RollOutput::Independent);
        RollNet::new(&vs.root(), config.clone());
        ArtifactMeta {
            format: FORMAT,
            fugue_version: "test".into(),
            created_at: "2026-11-21T00:00:00Z".into(),
            preset: Preset::PianorollLstm,
            representation: Representation::Pianoroll { grid: Grid::Quarter },
            network: Network::Roll(config),
            hyperparameters: serde_json::json!({"epochs": 1}),
            data: DataSource { source: Corpus::Path("test".into()), sha256: "00".into() },
            training: FitOutcome {
                history: vec![],
                best_epoch: 1,
                best_valid_loss: 9.5,
                stopped_early: false,
                budget_spent: false,
                planned_epochs: None,
            },
            evaluation: Default::default(),
            originality_index: None,
            held_out_statistics: None,
            music_evaluation: None,
            search: None,
        }
    }

    #[test]
    fn a_corpus_reads_and_writes_the_one_string_artifacts_have_always_held() {
        let data: DataSource = serde_json::from_str(r#"{"source": "dataset 7f3a", "sha256": "00"}"#).unwrap();
        assert_eq!(data.source, Corpus::Dataset("7f3a".into()));
        assert_eq!(data.dataset_id(), Some("7f3a"));
        assert_eq!(serde_json::to_value(&data).unwrap()["source"], "dataset 7f3a");
        let path: DataSource =
            serde_json::from_str(r#"{"source": "../shared/data", "sha256": "00"}"#).unwrap();
        assert_eq!(path.dataset_id(), None);
        assert_eq!(path.source, Corpus::Path("../shared/data".into()));
    }

    #[test]
    fn saves_and_loads_the_same_weights_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let meta = tiny(&vs);
        save(&dir.path().join("m"), &meta, &vs, None).unwrap();
        // Saving again replaces the model in one step.
        save(&dir.path().join("m"), &meta, &vs, None).unwrap();
        let loaded = LoadedModel::load(&dir.path().join("m"), Device::Cpu, WeightFormat::Fp32).unwrap();
        assert_eq!(loaded.meta, meta);
        for (name, tensor) in vs.variables() {
            assert!(loaded.vs.variables()[&name].equal(&tensor), "{name}");
        }
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["m"], "no staging or replaced directories remain");
    }

    #[test]
    fn loading_names_what_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let mut meta = tiny(&vs);
        let path = dir.path().join("m");
        save(&path, &meta, &vs, None).unwrap();

        meta.network = Network::Roll(RollNetConfig::plain(5, 1, RollOutput::Independent));
        std::fs::write(path.join(META_FILE), serde_json::to_string(&meta).unwrap()).unwrap();
        let error = format!("{:#}", LoadedModel::load(&path, Device::Cpu, WeightFormat::Fp32).err().unwrap());
        assert!(error.contains("does not fit its meta.json") && error.contains("shape"), "{error}");

        std::fs::write(path.join(META_FILE), r#"{"format": 99}"#).unwrap();
        let error = format!("{:#}", read_meta(&path).unwrap_err());
        assert!(error.contains("artifact format 99; this fugue reads format 1"), "{error}");
    }
}
