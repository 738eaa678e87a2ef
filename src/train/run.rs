//! One training run, whatever the preset: data in, a trained model and its
//! artifact metadata out. The CLI (`fugue train`) and the job workers both call
//! [`train`]; they differ only in where progress goes and what stops a run.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use tch::Device;
use tch::nn::VarStore;

use super::data::{Sequences, TrainingData, split_by_file};
use super::{Control, FitOutcome, LossFn, roll_training, seq2seq_training, token_training};
use crate::analysis::originality::{IndexedCorpus, MAX_INDEXED_NOTES};
use crate::analysis::statistics::{PieceStatistics, SetStatistics};
use crate::analysis::{TrainingPiece, notes_of};
use crate::midi::Score;
use crate::model::artifact::IndexSummary;
use crate::model::artifact::{self, ArtifactMeta, Network, Representation};
use crate::model::hyperparameters::{HyperparameterOverrides, Hyperparameters};
use crate::model::melody_net::{MelodyNet, frame_id};
use crate::model::optim::Optimizer;
use crate::model::presets::{Family, Preset, TokenRepresentation};
use crate::model::recipe::{self, CorpusSize, Pace};
use crate::model::roll_net::RollNet;
use crate::model::seq2seq_net::Seq2Seq;
use crate::model::token_net::TokenNet;
use crate::model::weights::write_atomically;
use crate::repr::melody_chords::{self, MelodyChordsConfig};
use crate::repr::pianoroll::{self, Frame};
use crate::repr::{Vocabulary, events, note_chord};

/// What to train, on what, where; checkpoints go to (and resume from) `checkpoints`.
#[derive(Clone)]
pub struct TrainingRun<'a> {
    pub preset: Preset,
    /// The preset's hyperparameters with the request's overrides in place: what
    /// trains when `recipe` is `None`, and what reads the corpus (its grid, the
    /// validation split) either way.
    pub hyperparameters: Hyperparameters,
    /// The request's overrides, when the corpus's recipe chooses the rest
    /// ([`recipe::choose`]); `None` trains `hyperparameters` as they are.
    pub recipe: Option<HyperparameterOverrides>,
    pub data: &'a TrainingData,
    pub device: Device,
    pub checkpoints: &'a Path,
    /// The rung of a search this run trains, when it is a search's trial.
    pub rung: Option<RungLimit>,
}

/// How far a search's trial trains in one rung ([`super::search`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RungLimit {
    /// The rung, of `rungs` (0 first).
    pub rung: usize,
    pub rungs: usize,
    /// The training time the trial may have spent by the rung's end, every rung's together.
    pub budget_seconds: f64,
    /// Its model is the search's (the last rung's, or the one taken when that
    /// trial diverged): it makes a whole artifact, and its hyperparameters are the job's.
    pub registers: bool,
}

impl RungLimit {
    pub fn is_last(self) -> bool {
        self.rung + 1 == self.rungs
    }
}

/// A trained model: its weights (the best epoch's), its artifact metadata and its
/// originality index's notes (trained on MIDI files, at most
/// [`MAX_INDEXED_NOTES`] training notes).
pub struct Trained {
    pub vs: VarStore,
    pub meta: ArtifactMeta,
    pub originality: Option<IndexedCorpus>,
}

/// Trains a run (from its checkpoints, when it has some) and hands back its
/// outcome; a family's trainer gives one to [`TrainingRun::planned`], which may
/// train a short run with it first to measure the pace.
type Probe<'p> = dyn Fn(&TrainingRun<'_>, &mut Control<'_>) -> anyhow::Result<FitOutcome> + 'p;

/// The most training seconds a run spends measuring its pace before it trains,
/// when the recipe fits its regularisation to the budget (at most one epoch, and
/// at most a tenth of the budget). They are not the budget's.
const PROBE_SECONDS: f64 = 10.0;
/// The most of the budget's seconds a probe may take, on a short budget.
const PROBE_SHARE_OF_BUDGET: f64 = 0.1;
/// Where a run keeps the pace it measured, beside its checkpoints, so that a
/// resumed run plans as its first attempt did.
pub const PACE_FILE: &str = "pace.json";

impl<'a> TrainingRun<'a> {
    /// This run with the hyperparameters it trains with on a training split of
    /// `corpus`'s size, which `control.planned` sees first. When the recipe fits
    /// them to the budget, `probe` measures the pace first ([`TrainingRun::pace`]).
    fn planned(
        &self,
        corpus: CorpusSize,
        control: &mut Control<'_>,
        probe: &Probe<'_>,
    ) -> anyhow::Result<TrainingRun<'a>> {
        let hyperparameters = match &self.recipe {
            Some(overrides) => {
                let mut hp = recipe::choose(self.preset, overrides, corpus);
                // A search's trials draw their own values, rung by rung.
                if self.rung.is_none()
                    && recipe::fits_to_budget(self.preset, overrides)
                    && let Some(pace) = self.pace(&hp, control.stop, probe)?
                {
                    recipe::fit_to_budget(&mut hp, self.preset, overrides, corpus, pace);
                }
                hp
            }
            None => self.hyperparameters.clone(),
        };
        (control.planned)(&hyperparameters)?;
        Ok(TrainingRun { hyperparameters, ..self.clone() })
    }

    /// The pace this run trains at: as recorded beside its checkpoints, or
    /// measured by `probe` training `hp` for [`PROBE_SECONDS`] (at most an epoch)
    /// in a folder of its own, then recorded. None when the probe took no step.
    fn pace(
        &self,
        hp: &Hyperparameters,
        stop: &AtomicBool,
        probe: &Probe<'_>,
    ) -> anyhow::Result<Option<Pace>> {
        let path = self.checkpoints.join(PACE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let pace =
                    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
                return Ok(Some(pace));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        }
        let seconds = PROBE_SECONDS.min(hp.budget_minutes * 60.0 * PROBE_SHARE_OF_BUDGET);
        tracing::info!(seconds, "measuring the training pace, for the recipe's budget");
        let scratch = tempfile::tempdir()?;
        let measuring = TrainingRun {
            hyperparameters: Hyperparameters { epochs: 1, budget_minutes: seconds / 60.0, ..hp.clone() },
            recipe: None,
            checkpoints: scratch.path(),
            ..self.clone()
        };
        let mut muted = Control {
            planned: &mut |_| Ok(()),
            progress: &mut |_| Ok(()),
            step: &mut |_| Ok(()),
            stop,
            checkpointed: None,
        };
        let outcome = probe(&measuring, &mut muted)?;
        // The probe drew on libtorch's generator: the run starts where its seed put it.
        tch::manual_seed(hp.seed as i64);
        let Some(first) = outcome.history.first() else { return Ok(None) };
        let pace = Pace { items_per_second: first.samples_per_second };
        std::fs::create_dir_all(self.checkpoints)?;
        write_atomically(&path, &serde_json::to_vec(&pace)?)?;
        Ok(Some(pace))
    }
}

/// What a family's trainer hands back before the metadata is assembled.
struct Fitted {
    /// The hyperparameters it trained with (the recipe's, when it had one).
    hyperparameters: Hyperparameters,
    vs: VarStore,
    representation: Representation,
    network: Network,
    outcome: FitOutcome,
}

impl Fitted {
    /// A network trained on piano rolls of the hyperparameters' grid.
    fn pianoroll(hp: &Hyperparameters, vs: VarStore, network: Network, outcome: FitOutcome) -> Fitted {
        let representation = Representation::Pianoroll { grid: hp.grid };
        Fitted { hyperparameters: hp.clone(), vs, representation, network, outcome }
    }
}

/// Trains `run` to the end (or until `control` stops it).
pub fn train(run: &TrainingRun<'_>, control: &mut Control<'_>) -> anyhow::Result<Trained> {
    let hp = &run.hyperparameters;
    // Seeds the initial weights; each epoch reseeds itself (see train::fit).
    tch::manual_seed(hp.seed as i64);
    let mut scores = Vec::new();
    let (mut fitted, data) = match run.preset.family() {
        family @ (Family::Pianoroll | Family::PianorollSeq2seq) => {
            let (splits, data) = match run.data.benchmark_splits()? {
                Some(benchmark) => benchmark,
                None => {
                    let data;
                    (scores, data) = run.data.scores()?;
                    let rolls: Vec<Vec<Frame>> =
                        scores.iter().map(|score| pianoroll::encode(score, hp.grid)).collect();
                    (split_by_file(rolls, hp.validation_fraction, hp.seed), data)
                }
            };
            let fitted = match family {
                Family::Pianoroll => train_roll(run, splits, control)?,
                _ => train_seq2seq(run, splits, control)?,
            };
            (fitted, data)
        }
        Family::Tokens(representation) => {
            let data;
            (scores, data) = run.data.scores()?;
            let files = run.data.file_bytes();
            (train_tokens(run, representation, &scores, &files, control)?, data)
        }
        Family::MelodyChords(config) => {
            let data;
            (scores, data) = run.data.scores()?;
            (train_melody(run, config, &scores, control)?, data)
        }
    };
    if let Some(planned) = fitted.outcome.planned_epochs {
        // The epochs the run planned from its pace, and the pace, replace the most it was allowed.
        recipe::record_plan(&mut fitted.hyperparameters, planned, &fitted.outcome.history);
        (control.planned)(&fitted.hyperparameters)?;
    }
    let mut evaluation = serde_json::Map::new();
    evaluation.insert("valid_loss".to_owned(), fitted.outcome.best_valid_loss.into());
    // Only the winner's rung makes a whole artifact: the others' are not kept.
    let held_out = match run.rung {
        Some(rung) if !rung.registers => None,
        _ => file_split(run.preset, hp, &scores, &run.data.file_bytes())
            .map(|split| HeldOut::of(&split, &scores, &run.data.piece_names())),
    };
    let meta = ArtifactMeta {
        format: artifact::FORMAT,
        fugue_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        preset: run.preset,
        representation: fitted.representation,
        network: fitted.network,
        hyperparameters: serde_json::to_value(&fitted.hyperparameters)?,
        data,
        training: fitted.outcome,
        evaluation,
        originality_index: None,
        held_out_statistics: None,
        music_evaluation: None,
        search: None,
    };
    let mut meta = meta;
    let originality = held_out.and_then(|held_out| held_out.apply(&mut meta));
    Ok(Trained { vs: fitted.vs, meta, originality })
}

/// Which files a run trains on and which it holds out, as indices into the
/// corpus's scores: the split the trainer itself makes. None for a benchmark JSON
/// (its own splits, and no MIDI files).
pub fn file_split(
    preset: Preset,
    hp: &Hyperparameters,
    scores: &[Score],
    files: &[&[u8]],
) -> Option<(Vec<usize>, Vec<usize>)> {
    if scores.is_empty() {
        return None;
    }
    // The token and melody families leave out files of fewer than two steps
    // before splitting (see `fit_on_ids`); the piano-roll ones split every file.
    let kept: Vec<usize> = match preset.family() {
        Family::Pianoroll | Family::PianorollSeq2seq => (0..scores.len()).collect(),
        Family::Tokens(representation) => {
            let representation = representation.for_corpus(scores);
            let steps = |(score, bytes): (&Score, &&[u8])| tokenize(&representation, score, bytes).len();
            (0..scores.len()).filter(|&i| steps((&scores[i], &files[i])) >= 2).collect()
        }
        Family::MelodyChords(config) => {
            (0..scores.len()).filter(|&i| melody_chords::encode(&scores[i], &config).len() >= 2).collect()
        }
    };
    if kept.len() < 2 {
        return None;
    }
    Some(split_by_file(kept, hp.validation_fraction, hp.seed))
}

/// What a run's split gives its artifact: the training files' originality index
/// and the held-out files' statistics.
pub struct HeldOut {
    pub originality: Option<IndexedCorpus>,
    pub statistics: Option<SetStatistics>,
}

impl HeldOut {
    /// `names` are the scores' piece names.
    pub fn of((train, valid): &(Vec<usize>, Vec<usize>), scores: &[Score], names: &[&str]) -> HeldOut {
        let pieces: Vec<TrainingPiece> = train
            .iter()
            .map(|&i| TrainingPiece::from_score(names.get(i).copied().unwrap_or("?"), &scores[i]))
            .collect();
        let corpus = IndexedCorpus::of(&pieces);
        let originality = if corpus.notes() > MAX_INDEXED_NOTES {
            tracing::warn!(notes = corpus.notes(), "too many training notes for an originality index");
            None
        } else {
            Some(corpus)
        };
        let statistics: Vec<PieceStatistics> =
            valid.iter().filter_map(|&i| PieceStatistics::of(&notes_of(&scores[i]))).collect();
        let statistics = (!statistics.is_empty()).then(|| SetStatistics::of(&statistics));
        HeldOut { originality, statistics }
    }

    /// Records both in `meta`; the index's notes, to store beside it.
    pub fn apply(self, meta: &mut ArtifactMeta) -> Option<IndexedCorpus> {
        meta.originality_index = self
            .originality
            .as_ref()
            .map(|corpus| IndexSummary { pieces: corpus.pieces(), notes: corpus.notes() });
        meta.held_out_statistics = self.statistics;
        self.originality
    }
}

fn train_roll(
    run: &TrainingRun<'_>,
    (train_set, valid_set): Sequences,
    control: &mut Control<'_>,
) -> anyhow::Result<Fitted> {
    let (train_set, valid_set) = (roll_training::usable(&train_set), roll_training::usable(&valid_set));
    if train_set.is_empty() || valid_set.is_empty() {
        bail!("needs sequences of two frames or more in both training and validation");
    }
    let corpus = corpus_size(&train_set);
    let valid_order = in_order(valid_set.len());
    let valid_set = roll_training::Shifted::unmoved(valid_set);
    let train_set = roll_training::Shifted::unmoved(train_set);
    let fit_roll = |run: &TrainingRun<'_>, control: &mut Control<'_>| {
        let (hp, device) = (&run.hyperparameters, run.device);
        let vs = VarStore::new(device);
        let net = RollNet::new(&vs.root(), run.preset.roll_network(hp));
        let valid_batches = roll_training::batches(&valid_set, &valid_order, hp.batch_size, device);
        let train_batches = |_epoch: u32| {
            let order = super::shuffled(train_set.sequences.len());
            match hp.transpose {
                0 => roll_training::batches(&train_set, &order, hp.batch_size, device),
                semitones => {
                    let moved = roll_training::transposed(&train_set.sequences, semitones);
                    roll_training::batches(&moved, &order, hp.batch_size, device)
                }
            }
        };
        let loss = |batch: &roll_training::RollBatch, train: bool| roll_training::loss(&net, batch, train);
        let outcome = fit(run, &vs, &train_batches, &valid_batches, &loss, control)?;
        anyhow::Ok((vs, net, outcome))
    };
    let run = &run.planned(corpus, control, &|run, control| Ok(fit_roll(run, control)?.2))?;
    let (vs, net, outcome) = fit_roll(run, control)?;
    Ok(Fitted::pianoroll(&run.hyperparameters, vs, Network::Roll(net.config().clone()), outcome))
}

fn train_seq2seq(
    run: &TrainingRun<'_>,
    (train_set, valid_set): Sequences,
    control: &mut Control<'_>,
) -> anyhow::Result<Fitted> {
    // The recipe leaves the window as the request has it.
    let window = run.hyperparameters.window;
    let (train_pairs, valid_pairs) =
        (seq2seq_training::pairs(&train_set, window), seq2seq_training::pairs(&valid_set, window));
    if train_pairs.is_empty() || valid_pairs.is_empty() {
        bail!("needs sequences of at least two windows ({} frames) in training and validation", 2 * window);
    }
    let fit_seq2seq = |run: &TrainingRun<'_>, control: &mut Control<'_>| {
        let (hp, device) = (&run.hyperparameters, run.device);
        let vs = VarStore::new(device);
        let net = Seq2Seq::new(&vs.root(), run.preset.seq2seq_network(hp));
        let valid_batches =
            seq2seq_training::batches(&valid_pairs, &in_order(valid_pairs.len()), hp.batch_size, 0.0, device);
        let train_batches = |epoch: u32| {
            let ratio = hp.teacher_forcing * hp.teacher_forcing_decay.powi(epoch as i32 - 1);
            let order = super::shuffled(train_pairs.len());
            seq2seq_training::batches(&train_pairs, &order, hp.batch_size, ratio, device)
        };
        let loss =
            |batch: &seq2seq_training::PairBatch, train: bool| seq2seq_training::loss(&net, batch, train);
        let outcome = fit(run, &vs, &train_batches, &valid_batches, &loss, control)?;
        anyhow::Ok((vs, net, outcome))
    };
    let probe = |run: &TrainingRun<'_>, control: &mut Control<'_>| Ok(fit_seq2seq(run, control)?.2);
    let run = &run.planned(corpus_size(&train_set), control, &probe)?;
    let (vs, net, outcome) = fit_seq2seq(run, control)?;
    Ok(Fitted::pianoroll(&run.hyperparameters, vs, Network::Seq2seq(net.config().clone()), outcome))
}

fn train_tokens(
    run: &TrainingRun<'_>,
    representation: TokenRepresentation,
    scores: &[Score],
    files: &[&[u8]],
    control: &mut Control<'_>,
) -> anyhow::Result<Fitted> {
    let representation = representation.for_corpus(scores);
    let sequences: Vec<Vec<String>> =
        scores.iter().zip(files).map(|(score, bytes)| tokenize(&representation, score, bytes)).collect();
    let vocabulary = Vocabulary::build(sequences.iter().map(Vec::as_slice));
    let ids: Vec<Vec<i64>> = sequences
        .iter()
        .map(|sequence| vocabulary.encode(sequence).map(|ids| ids.into_iter().map(i64::from).collect()))
        .collect::<Result<_, _>>()
        .map_err(|token| anyhow::anyhow!("token `{token}` missing from its own vocabulary"))?;
    let fit_tokens = |run: &TrainingRun<'_>, split: &Sequences<i64>, control: &mut Control<'_>| {
        let vs = VarStore::new(run.device);
        let net = TokenNet::new(&vs.root(), run.preset.token_network(&run.hyperparameters, vocabulary.len()));
        let loss = |batch: &token_training::TokenBatch, train: bool| token_training::loss(&net, batch, train);
        let outcome = fit_on_ids(run, split, &vs, &loss, control)?;
        anyhow::Ok((vs, net, outcome))
    };
    let (run, split) =
        &planned_on_ids(run, ids, control, &|run, split, control| Ok(fit_tokens(run, split, control)?.2))?;
    let (vs, net, outcome) = fit_tokens(run, split, control)?;
    let representation = match representation {
        TokenRepresentation::Events(config) => {
            let parts = if config.max_parts > 0 { events::corpus_parts(scores) } else { Vec::new() };
            Representation::Events { config, vocabulary, parts }
        }
        TokenRepresentation::NoteChord(config) => Representation::NoteChord { config, vocabulary },
    };
    let network = Network::Token(net.config().clone());
    Ok(Fitted { hyperparameters: run.hyperparameters.clone(), vs, representation, network, outcome })
}

fn train_melody(
    run: &TrainingRun<'_>,
    config: MelodyChordsConfig,
    scores: &[Score],
    control: &mut Control<'_>,
) -> anyhow::Result<Fitted> {
    let ids: Vec<Vec<i64>> = scores
        .iter()
        .map(|score| melody_chords::encode(score, &config).into_iter().map(frame_id).collect())
        .collect();
    let fit_melody = |run: &TrainingRun<'_>, split: &Sequences<i64>, control: &mut Control<'_>| {
        let vs = VarStore::new(run.device);
        let net = MelodyNet::new(&vs.root(), run.preset.melody_network(&run.hyperparameters));
        let loss =
            |batch: &token_training::TokenBatch, train: bool| token_training::melody_loss(&net, batch, train);
        let outcome = fit_on_ids(run, split, &vs, &loss, control)?;
        anyhow::Ok((vs, net, outcome))
    };
    let (run, split) =
        &planned_on_ids(run, ids, control, &|run, split, control| Ok(fit_melody(run, split, control)?.2))?;
    let (vs, net, outcome) = fit_melody(run, split, control)?;
    let representation = Representation::MelodyChords { config };
    let network = Network::Melody(net.config().clone());
    Ok(Fitted { hyperparameters: run.hyperparameters.clone(), vs, representation, network, outcome })
}

/// A [`Probe`] of a trainer that trains on an id split.
type SplitProbe<'p> =
    dyn Fn(&TrainingRun<'_>, &Sequences<i64>, &mut Control<'_>) -> anyhow::Result<FitOutcome> + 'p;

/// Splits id sequences by file (files of fewer than two ids left out), and plans
/// the run on the training files' ids; `fit_split` trains a run on the split (the
/// plan's probe).
fn planned_on_ids<'a>(
    run: &TrainingRun<'a>,
    ids: Vec<Vec<i64>>,
    control: &mut Control<'_>,
    fit_split: &SplitProbe<'_>,
) -> anyhow::Result<(TrainingRun<'a>, Sequences<i64>)> {
    let hp = &run.hyperparameters;
    let ids: Vec<Vec<i64>> = ids.into_iter().filter(|sequence| sequence.len() >= 2).collect();
    if ids.len() < 2 {
        bail!("needs at least two files with two tokens or more");
    }
    let split = split_by_file(ids, hp.validation_fraction, hp.seed);
    let run = run.planned(corpus_size(&split.0), control, &|run, control| fit_split(run, &split, control))?;
    Ok((run, split))
}

/// Cuts the split id sequences into windows and trains.
fn fit_on_ids(
    run: &TrainingRun<'_>,
    (train_ids, valid_ids): &Sequences<i64>,
    vs: &VarStore,
    loss: LossFn<'_, token_training::TokenBatch>,
    control: &mut Control<'_>,
) -> anyhow::Result<FitOutcome> {
    let hp = &run.hyperparameters;
    let device = vs.device();
    let train_windows = token_training::windows(train_ids, hp.window);
    let valid_windows = token_training::windows(valid_ids, hp.window);
    let valid_batches =
        token_training::batches(&valid_windows, &in_order(valid_windows.len()), hp.batch_size, device);
    let train_batches = |_epoch: u32| {
        token_training::batches(&train_windows, &super::shuffled(train_windows.len()), hp.batch_size, device)
    };
    fit(run, vs, &train_batches, &valid_batches, loss, control)
}

/// A file's tokens; the tutorial parses read its bytes, the others its score.
pub fn tokenize(representation: &TokenRepresentation, score: &Score, bytes: &[u8]) -> Vec<String> {
    match representation {
        TokenRepresentation::Events(config) => {
            events::encode(score, config).iter().map(ToString::to_string).collect()
        }
        TokenRepresentation::NoteChord(config) => note_chord::encode_file(bytes, score, config),
    }
}

/// The training loop with a fresh optimizer.
fn fit<B>(
    run: &TrainingRun<'_>,
    vs: &VarStore,
    train_batches: &dyn Fn(u32) -> Vec<B>,
    valid_batches: &[B],
    loss: LossFn<'_, B>,
    control: &mut Control<'_>,
) -> anyhow::Result<FitOutcome> {
    let hp = &run.hyperparameters;
    let mut optimizer = Optimizer::new(vs, hp.optimizer());
    let mut config = hp.fit();
    if let Some(limit) = run.rung {
        config.pause_after = Some(super::search::rung_epochs(config.epochs, limit.rung, limit.rungs));
        config.budget_seconds = limit.budget_seconds;
    }
    // The recipe's epochs are planned from the pace measured, unless the request
    // set them; a search's rungs keep theirs (the search plans them).
    config.plan_epochs =
        run.rung.is_none() && run.recipe.as_ref().is_some_and(|overrides| overrides.epochs.is_none());
    super::fit(vs, &mut optimizer, &config, train_batches, valid_batches, loss, run.checkpoints, control)
}

/// The size of a training split: its items (frames or tokens) and pieces.
fn corpus_size<T>(sequences: &[Vec<T>]) -> CorpusSize {
    CorpusSize {
        items: sequences.iter().map(|sequence| sequence.len() as u64).sum(),
        pieces: sequences.len() as u64,
    }
}

fn in_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::PathBuf;

    use super::*;
    use crate::train::EpochMetrics;

    #[test]
    fn a_run_measures_its_pace_once_elsewhere_and_a_resumed_run_reads_it() {
        let checkpoints = tempfile::tempdir().unwrap();
        let data = TrainingData::Benchmark(PathBuf::new());
        let run = TrainingRun {
            preset: Preset::PianorollLstm,
            hyperparameters: Preset::PianorollLstm.defaults(),
            recipe: Some(HyperparameterOverrides::default()),
            data: &data,
            device: Device::Cpu,
            checkpoints: checkpoints.path(),
            rung: None,
        };
        let probes = Cell::new(0);
        let probe_seconds = Cell::new(0.0);
        let probe = |measuring: &TrainingRun<'_>, _: &mut Control<'_>| {
            probes.set(probes.get() + 1);
            probe_seconds.set(measuring.hyperparameters.budget_minutes * 60.0);
            assert_eq!(measuring.hyperparameters.epochs, 1, "at most an epoch");
            assert!(measuring.recipe.is_none());
            assert_ne!(
                measuring.checkpoints,
                checkpoints.path(),
                "the probe's checkpoints are not the run's"
            );
            Ok(FitOutcome {
                history: vec![EpochMetrics::timed(1, 10.0, 5_522.0)],
                best_epoch: 1,
                best_valid_loss: 9.0,
                stopped_early: false,
                budget_spent: true,
                planned_epochs: None,
            })
        };
        let stop = AtomicBool::new(false);
        let measured = run.pace(&run.hyperparameters, &stop, &probe).unwrap();
        assert_eq!(measured, Some(Pace { items_per_second: 5_522.0 }));
        assert_eq!(probe_seconds.get(), PROBE_SECONDS, "an hour's budget");
        assert!(checkpoints.path().join(PACE_FILE).exists());
        // Resumed (here, asked again): the recorded pace, not a new measurement.
        assert_eq!(run.pace(&run.hyperparameters, &stop, &probe).unwrap(), measured);
        assert_eq!(probes.get(), 1);
        // A budget of a minute is probed for a tenth of it.
        let elsewhere = tempfile::tempdir().unwrap();
        let minute = Hyperparameters { budget_minutes: 1.0, ..run.hyperparameters.clone() };
        let short = TrainingRun { checkpoints: elsewhere.path(), ..run.clone() };
        short.pace(&minute, &stop, &probe).unwrap();
        assert!((probe_seconds.get() - 6.0).abs() < 1e-9, "{}", probe_seconds.get());
    }
}
