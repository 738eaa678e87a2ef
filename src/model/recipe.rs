//! Recipes that scale with the corpus: a preset's defaults were tuned by hand on
//! one corpus (its [`Reference`]); on another corpus [`choose`] fits the batch
//! to its pieces and the regularisation to how much music it holds, and the run plans its
//! epochs from the pace it measures as it trains ([`planned_epochs`]), within the
//! time budget. Each choice says why. A hyperparameter the request sets is kept
//! as it is.
//!
//! Two sizes of a corpus's training split, each against the reference's:
//! - pieces `p` = its sequences (piano rolls or files) ÷ the reference's;
//! - information `r` = pieces × their mean length, up to the reference's mean
//!   length, ÷ the reference's items. A finer grid of the same music (8th or 16th
//!   notes for quarters) holds as many pieces and no more music, so it has the
//!   reference's `r`; only more pieces (or longer ones, up to the reference's
//!   length) raise it.
//!
//! The rules:
//! - regularisation scale `s` = 1 − 0.25·log10 r, within 0.4–1.2: `dropout` and
//!   `recurrent_dropout` are the preset's times `s` (at most 0.9);
//! - `batch_size` = the preset's × √p, to a power of two, at least 1, on a corpus
//!   of fewer pieces than the reference (`p` < 1), and the preset's otherwise. It
//!   follows the pieces only: a piano-roll batch is padded to its longest
//!   sequence, so a batch that grows with the frames per piece adds padding, not
//!   speed. The other presets batch windows of a fixed length cut from every
//!   file, as many as the items allow, so theirs follows the items ratio in
//!   place of `p` (`classical-piano` on 3 files, 17 windows, shrunk by `p` to
//!   16 took a second step of one window each epoch, and lost by 0.21).
//!   And it does not grow with more pieces either: at a time budget on one
//!   CPU thread, batches 2–4× the preset's ran 0.92–1.37× as fast per frame, took
//!   a half to a quarter of the steps, and lost each time (`models/README.md`: 8th
//!   and 16th notes, and 12 keys twice);
//! - `patience` = the preset's ÷ r, within 2 and the preset's: the preset waits
//!   its patience in epochs of its own corpus, that is as much music seen without
//!   improving; a corpus with more music waits as much music in fewer epochs. It
//!   does not shrink with the budget: the budget ends the run anyway, and a
//!   patience cut to fit it could only stop a run sooner on a noisy epoch;
//! - `learning_rate_schedule` = the preset's, its decay per epoch kept under the
//!   budget. Not compressed to reach the preset's last rate as the budget ends,
//!   nor a warm-up and cosine: in the runs the budget cut short
//!   (`models/README.md`) the validation loss was still falling at the end, and
//!   lowering the rate sooner lost (with `fugue`, where the schedule was all that
//!   differed, the cosine led while its rate was high and fell behind once it
//!   fell below the exponential's); a compressed decay lowers it sooner too,
//!   and an anneal over the budget's last fifth alone did not win either;
//! - the budget: a run whose budget holds less than half the preset's run (its
//!   epochs × `r`, at least 1 since a smaller corpus repeats its music as often
//!   each epoch, against the epochs the preset's run trains on its own corpus
//!   before its patience ends it, [`Reference::epochs`]) overfits less in the
//!   time it has, and learns faster with less holding it back. Against the
//!   preset's most epochs instead, `fugue` at 17 of 40 lost: its own run stops
//!   at 26, so 17 was no short run, and less dropout only overfitted sooner.
//!   [`fit_to_budget`] scales `dropout` and `recurrent_dropout` by (2 × that
//!   share)^⅔, at least 0.4, from the pace the run measures on its corpus before
//!   it trains. On JSB in 16th notes at 15 minutes (85 epochs of
//!   the preset run's 344), the preset's regularisation × 0.57 led the preset's own by
//!   0.15 nats at the end, and × 0.83 by 0.09 at epoch 58 (`models/README.md`);
//! - `learning_rate_drops` = 2 (the presets' 0 stops at once): a run whose
//!   patience runs out before its budget does goes back to its best epoch's
//!   weights at 0.3× the rate and waits its patience again, at most twice. It
//!   spends budget the preset's run leaves unused, and costs nothing where the
//!   budget ends the run first;
//! - `epochs`: at most the preset's; after every epoch the run plans them from the
//!   pace measured so far ([`planned_epochs`]): those done and what the rest of
//!   the budget holds, rounded up, so the budget (or the preset's epochs, or
//!   patience), never a stale estimate, ends the run. `meta.json` records the plan
//!   (`training.planned_epochs`) and `hyperparameters.epochs` is set to it.
//!
//! At the reference size the rules give the preset's own defaults back, but for
//! `learning_rate_drops`, which only spends budget the preset's run leaves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hyperparameters::{HyperparameterOverrides, Hyperparameters};
use super::presets::Preset;
use super::training_record::{EpochMetrics, LEARNING_RATE_DROP, LearningRateSchedule};

/// A corpus's training split, as the recipe reads it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorpusSize {
    /// Frames (piano-roll presets) or tokens (token and melody presets).
    pub items: u64,
    /// Sequences: piano rolls, or files.
    pub pieces: u64,
}

/// The corpus a preset's defaults were tuned on: its training split as the
/// preset reads it (the same numbers its runs print and record), and how long
/// the preset's own run on it trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    pub corpus: CorpusSize,
    /// The epochs the preset's run trains on `corpus` (seed 1) before its
    /// patience ends it, as measured; its most where it trains them all or no
    /// run could be measured. A budget is short against these, not the most:
    /// a run that stops by its patience at 26 of 40 epochs is whole at 26.
    pub epochs: u32,
}

impl Reference {
    pub fn of(preset: Preset) -> Reference {
        // JSB's training split at quarter notes: 13,807 frames in 229 chorales.
        // The token presets: the 410 chorales of `bach-chorales-midi/`, less the
        // 62 files held out (seed 1), as each preset tokenizes them (but see
        // `CLASSICAL_PIANO_TOKENS`).
        let jsb = CorpusSize { items: 13_807, pieces: 229 };
        let chorales = |items| CorpusSize { items, pieces: 348 };
        // The epochs: the preset's runs in `models/README.md` ("Recipes at a
        // 15-minute budget", round 7), each ended by its patience; another CPU's
        // kernels move them by a few epochs (`pianoroll-seq2seq`: 37 on an AMD
        // EPYC, 41 on an Intel Xeon). `classical-piano`'s piano corpus is not
        // here to train on, so it counts its most.
        let (corpus, epochs) = match preset {
            Preset::PianorollLstm => (jsb, 344),
            Preset::PianorollNade => (jsb, 171),
            Preset::PianorollSeq2seq => (jsb, 37),
            Preset::Fugue => (chorales(FUGUE_TOKENS), 26),
            Preset::PlayBach => (chorales(PLAY_BACH_TOKENS), 23),
            Preset::ClassicalPiano => (chorales(CLASSICAL_PIANO_TOKENS), preset.defaults().epochs),
            Preset::FolkRnn => (chorales(FOLK_RNN_TOKENS), 33),
        };
        Reference { corpus, epochs }
    }

    /// The reference's mean piece length, in items.
    fn piece_length(self) -> f64 {
        self.corpus.items as f64 / self.corpus.pieces.max(1) as f64
    }

    /// `corpus`'s pieces ÷ the reference's.
    pub fn pieces_ratio(self, corpus: CorpusSize) -> f64 {
        corpus.pieces.max(1) as f64 / self.corpus.pieces.max(1) as f64
    }

    /// `corpus`'s items ÷ the reference's.
    pub fn items_ratio(self, corpus: CorpusSize) -> f64 {
        corpus.items.max(1) as f64 / self.corpus.items.max(1) as f64
    }

    /// `corpus`'s information ÷ the reference's: its pieces times their mean
    /// length, up to the reference's mean length, over the reference's items.
    pub fn information_ratio(self, corpus: CorpusSize) -> f64 {
        let length = (corpus.items.max(1) as f64 / corpus.pieces.max(1) as f64).min(self.piece_length());
        corpus.pieces.max(1) as f64 * length / self.corpus.items.max(1) as f64
    }
}

/// Training tokens of the 410 chorales (348 training files, seed 1), per preset,
/// as `fugue train` counts them.
const FUGUE_TOKENS: u64 = 473_805;
const PLAY_BACH_TOKENS: u64 = 111_147;
const FOLK_RNN_TOKENS: u64 = 45_179;
/// An estimate, not a count: `classical-piano` reads the first instrument of
/// piano MIDI files, which are not here to count, and of the chorales only 3
/// training files give it tokens (1,493).
const CLASSICAL_PIANO_TOKENS: u64 = 40_000;

/// Why each hyperparameter the recipe decides has its value, by name.
pub type Reasons = BTreeMap<String, String>;

/// Fewest epochs without improvement before stopping, once scaled.
const MIN_PATIENCE: u32 = 2;

/// Returns to the best weights at a lower rate the recipe allows a run.
const LEARNING_RATE_DROPS: u32 = 2;

/// The preset's hyperparameters (with the request's `overrides` in place) fitted to
/// `corpus`; [`Hyperparameters::recipe`] says why. `epochs` is the most the run
/// may train: unless the request sets it, the run plans them as it goes
/// ([`planned_epochs`], [`record_plan`]).
pub fn choose(preset: Preset, overrides: &HyperparameterOverrides, corpus: CorpusSize) -> Hyperparameters {
    let defaults = preset.defaults();
    let mut hp = overrides.apply_to(defaults.clone());
    let reference = Reference::of(preset);
    let (pieces, information) = (reference.pieces_ratio(corpus), reference.information_ratio(corpus));
    let size = format!(
        "{} items in {} pieces: {pieces:.2}× the pieces and {information:.2}× the music of the preset's \
         tuning ({} items in {} pieces)",
        corpus.items, corpus.pieces, reference.corpus.items, reference.corpus.pieces
    );
    let mut reasons = Reasons::new();
    let mut decide = |name: &str, set: bool, reason: String| {
        let reason = if set { "set by the request".to_owned() } else { reason };
        reasons.insert(name.to_owned(), reason);
    };

    let scale = (1.0 - 0.25 * information.log10()).clamp(0.4, 1.2);
    let regularisation = |preset_value: f64| ((preset_value * scale).min(0.9) * 100.0).round() / 100.0;
    for (name, set, value, preset_value) in [
        ("dropout", overrides.dropout.is_some(), &mut hp.dropout, defaults.dropout),
        (
            "recurrent_dropout",
            overrides.recurrent_dropout.is_some(),
            &mut hp.recurrent_dropout,
            defaults.recurrent_dropout,
        ),
    ] {
        if !set {
            *value = regularisation(preset_value);
        }
        decide(name, set, format!("{preset_value:.2} × {scale:.2} for {size}"));
    }

    let (rows, what) = if preset.family().batches_whole_pieces() {
        (pieces, "the pieces (not their length)")
    } else {
        (
            reference.items_ratio(corpus),
            "the windows (cut from the items at a fixed length, whatever the files)",
        )
    };
    if overrides.batch_size.is_none() {
        hp.batch_size = batch_for(defaults.batch_size, rows);
    }
    decide(
        "batch_size",
        overrides.batch_size.is_some(),
        if rows < 1.0 {
            format!("{} × √{rows:.2}, {what}, to a power of two", defaults.batch_size)
        } else {
            format!(
                "the preset's {}: {rows:.2}× {what}, and a larger batch takes fewer steps in the budget",
                defaults.batch_size
            )
        },
    );

    if overrides.patience.is_none() {
        hp.patience = ((f64::from(defaults.patience) / information).round() as u32)
            .clamp(MIN_PATIENCE, defaults.patience);
    }
    decide(
        "patience",
        overrides.patience.is_some(),
        format!(
            "the preset's {} ÷ {information:.2}, the music an epoch holds, at least {MIN_PATIENCE}",
            defaults.patience
        ),
    );

    if overrides.learning_rate_drops.is_none() {
        hp.learning_rate_drops = LEARNING_RATE_DROPS;
    }
    decide(
        "learning_rate_drops",
        overrides.learning_rate_drops.is_some(),
        format!(
            "{LEARNING_RATE_DROPS} (the preset stops at once): a run whose patience runs out with budget left goes \
             on from its best epoch at {LEARNING_RATE_DROP}× the rate"
        ),
    );

    decide(
        "epochs",
        overrides.epochs.is_some(),
        format!(
            "at most the preset's {}; planned after every epoch from the pace measured, to fill {} minutes",
            defaults.epochs, hp.budget_minutes
        ),
    );

    decide(
        "learning_rate_schedule",
        overrides.learning_rate_schedule.is_some(),
        format!(
            "the preset's: {}, kept per epoch whatever the budget",
            match defaults.learning_rate_schedule {
                LearningRateSchedule::Exponential => {
                    let whose = if overrides.learning_rate_decay.is_some() {
                        "the request's"
                    } else {
                        "the preset's"
                    };
                    format!("exponential, × {} after every epoch ({whose} decay)", hp.learning_rate_decay)
                }
                LearningRateSchedule::WarmupCosine => "warm-up and cosine".to_owned(),
            }
        ),
    );
    hp.recipe = Some(reasons);
    hp
}

/// How fast a run trains on its machine: training items (frames or tokens) a
/// second, measured on its corpus before it trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    pub items_per_second: f64,
}

/// The power of the budget's scale: (2 × the share of the preset's music)^⅔.
const BUDGET_SCALE_POWER: f64 = 2.0 / 3.0;
/// The least the budget scales regularisation by.
const MIN_BUDGET_SCALE: f64 = 0.4;

/// Whether [`fit_to_budget`] may change what [`choose`] chose: the request left
/// some regularisation to the recipe, and the preset has it.
pub fn fits_to_budget(preset: Preset, overrides: &HyperparameterOverrides) -> bool {
    let defaults = preset.defaults();
    (overrides.dropout.is_none() && defaults.dropout > 0.0)
        || (overrides.recurrent_dropout.is_none() && defaults.recurrent_dropout > 0.0)
}

/// Scales the regularisation [`choose`] gave `hp` for `corpus` to the share of the
/// preset's run its budget holds at `pace`: the epochs the budget holds (at most
/// `hp.epochs`) × the corpus's information ratio, at least 1, against the
/// epochs the preset's run trains on its own corpus ([`Reference::epochs`]). A
/// corpus with more music than the reference's sees as much in fewer epochs; a
/// smaller one repeats its music as often each epoch, so its epochs count whole
/// (its size already raised its regularisation, and at a ratio below 1 a budget
/// that holds all the preset's run would otherwise count as a short run and
/// undo that). Half the preset's run or more leaves it as it is; less scales it
/// by (2 × the share)^⅔, at least [`MIN_BUDGET_SCALE`].
/// What the request set stays.
pub fn fit_to_budget(
    hp: &mut Hyperparameters,
    preset: Preset,
    overrides: &HyperparameterOverrides,
    corpus: CorpusSize,
    pace: Pace,
) {
    let reference = Reference::of(preset);
    let reference_epochs = f64::from(reference.epochs.max(1));
    let seconds = hp.budget_minutes * 60.0;
    let epochs = (seconds * pace.items_per_second / corpus.items.max(1) as f64).min(f64::from(hp.epochs));
    let run = epochs * reference.information_ratio(corpus).max(1.0);
    let share = run / reference_epochs;
    let scale = (2.0 * share).min(1.0).powf(BUDGET_SCALE_POWER).max(MIN_BUDGET_SCALE);
    let why = format!(
        "; × {scale:.2} for the budget: {} minutes hold {epochs:.0} epochs at the {:.0} items/s measured, \
         as much training as {run:.0} epochs on the preset's own corpus, against the {reference_epochs} \
         its run trains there",
        hp.budget_minutes, pace.items_per_second
    );
    for (name, set, value) in [
        ("dropout", overrides.dropout.is_some(), &mut hp.dropout),
        ("recurrent_dropout", overrides.recurrent_dropout.is_some(), &mut hp.recurrent_dropout),
    ] {
        if set {
            continue;
        }
        if scale < 1.0 {
            *value = (*value * scale * 100.0).round() / 100.0;
        }
        if let Some(reason) = hp.recipe.as_mut().and_then(|reasons| reasons.get_mut(name)) {
            reason.push_str(&why);
        }
    }
}

/// The epochs a run plans after `done` epochs that took `spent` seconds of its
/// `budget` seconds: those done and what the rest of the budget holds at the pace
/// so far, rounded up so that the budget, not the plan, ends the last one; at
/// most `most`. Before the first epoch, with no pace yet, `most`.
pub fn planned_epochs(most: u32, done: u32, spent: f64, budget: f64) -> u32 {
    if done == 0 || spent <= 0.0 {
        return most;
    }
    let left = (budget - spent).max(0.0);
    let per_epoch = spent / f64::from(done);
    let more = (left / per_epoch).ceil().min(f64::from(u32::MAX));
    done.saturating_add(more as u32).min(most)
}

/// Writes the epochs a run planned from its pace (`planned`, after the epochs of
/// `history`) into its hyperparameters, and why.
pub fn record_plan(hp: &mut Hyperparameters, planned: u32, history: &[EpochMetrics]) {
    let most = hp.epochs;
    hp.epochs = planned;
    let seconds: f64 = history.iter().map(|m| m.seconds).sum();
    let pace = history.iter().map(|m| m.samples_per_second * m.seconds).sum::<f64>() / seconds.max(1e-9);
    let reason = format!(
        "{} epochs trained in {seconds:.0} s at {pace:.0} items/s measured; {planned} planned for {} \
         minutes, at most {most}",
        history.len(),
        hp.budget_minutes
    );
    hp.recipe.get_or_insert_with(Reasons::new).insert("epochs".to_owned(), reason);
}

/// The preset's batch × √ratio as a power of two, at least 1 and never above
/// the preset's.
fn batch_for(preset_batch: usize, ratio: f64) -> usize {
    let scaled = (preset_batch as f64 * ratio.min(1.0).sqrt()).max(1.0);
    let power = 2f64.powf(scaled.log2().round()) as usize;
    power.clamp(1, preset_batch.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> HyperparameterOverrides {
        HyperparameterOverrides::default()
    }

    const PRESETS: [Preset; 7] = [
        Preset::PianorollLstm,
        Preset::PianorollNade,
        Preset::PianorollSeq2seq,
        Preset::Fugue,
        Preset::PlayBach,
        Preset::ClassicalPiano,
        Preset::FolkRnn,
    ];

    /// What the recipe chose for the corpus, without its reasons and with the
    /// preset's drops (the one choice the recipe makes on every corpus).
    fn for_the_corpus(chosen: &Hyperparameters) -> Hyperparameters {
        Hyperparameters { recipe: None, learning_rate_drops: 0, ..chosen.clone() }
    }

    /// What the recipe chooses for `corpus`, fitted to its budget at the pace given.
    fn fitted(
        preset: Preset,
        overrides: &HyperparameterOverrides,
        corpus: CorpusSize,
        items_per_second: f64,
    ) -> Hyperparameters {
        let mut hp = choose(preset, overrides, corpus);
        fit_to_budget(&mut hp, preset, overrides, corpus, Pace { items_per_second });
        hp
    }

    /// The dropout chosen, and why.
    fn dropout_and_why(hp: Hyperparameters) -> (f64, String) {
        (hp.dropout, hp.recipe.unwrap()["dropout"].clone())
    }

    /// JSB quarter's training split with every chorale in 12 keys.
    const JSB_12_KEYS: CorpusSize = CorpusSize { items: 12 * 13_807, pieces: 12 * 229 };

    #[test]
    fn at_the_reference_size_the_recipe_is_the_preset() {
        for preset in PRESETS {
            for budget_minutes in [None, Some(15.0)] {
                let overrides = HyperparameterOverrides { budget_minutes, ..none() };
                let chosen = choose(preset, &overrides, Reference::of(preset).corpus);
                let defaults = overrides.apply_to(preset.defaults());
                assert_eq!(for_the_corpus(&chosen), defaults, "{preset:?}");
                assert_eq!(chosen.learning_rate_drops, LEARNING_RATE_DROPS, "{preset:?}");
                assert_eq!(chosen.recipe.unwrap().len(), 7);
            }
        }
    }

    #[test]
    fn play_bach_is_the_preset_on_the_corpus_it_was_tuned_on() {
        // The 410 chorales' training files as play-bach reads them (models/README.md).
        let chorales = CorpusSize { items: 111_147, pieces: 348 };
        let chosen = choose(Preset::PlayBach, &none(), chorales);
        assert_eq!(for_the_corpus(&chosen), Preset::PlayBach.defaults());
    }

    #[test]
    fn a_window_presets_batch_follows_its_items_not_its_files() {
        // `fugue`'s own tokens in 3 files instead of 348: as many windows, the preset's batch.
        let few_files = choose(Preset::Fugue, &none(), CorpusSize { items: FUGUE_TOKENS, pieces: 3 });
        assert_eq!(few_files.batch_size, Preset::Fugue.defaults().batch_size);
        assert!(few_files.recipe.unwrap()["batch_size"].contains("1.00× the windows"));
        // `classical-piano` on the 410 chorales: 1,493 tokens, 0.04× its reference's:
        // 128 × √0.04 = 24.7, to 32 (its 17 windows in one step, as the preset's 128).
        let chorales = choose(Preset::ClassicalPiano, &none(), CorpusSize { items: 1_493, pieces: 3 });
        assert_eq!(chorales.batch_size, 32, "{}", chorales.recipe.unwrap()["batch_size"]);
        // A piano roll batches whole pieces: fewer of them, smaller batches.
        let rolls = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 13_807, pieces: 57 });
        assert_eq!(rolls.batch_size, 2, "4 × √0.25");
    }

    #[test]
    fn a_tiny_corpus_is_regularised_hard_in_small_batches() {
        // jsb-mini: 8 chorales of some 60 frames.
        let tiny = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 500, pieces: 8 });
        let preset = Preset::PianorollLstm.defaults();
        assert_eq!(tiny.batch_size, 1);
        assert!(tiny.dropout > preset.dropout && tiny.dropout <= 0.9, "{}", tiny.dropout);
        assert_eq!(tiny.recurrent_dropout, 0.9, "0.8 × 1.2, at most 0.9");
        assert_eq!((tiny.epochs, tiny.patience), (preset.epochs, preset.patience));
        assert_eq!(tiny.learning_rate_schedule, preset.learning_rate_schedule);
    }

    #[test]
    fn a_large_corpus_is_regularised_less_and_waits_fewer_epochs_in_the_presets_batches() {
        let preset = Preset::PianorollLstm.defaults();
        // 100 × JSB: 22,900 chorales of JSB's length.
        let large = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 1_380_700, pieces: 22_900 });
        assert_eq!(large.batch_size, preset.batch_size, "a larger batch would take fewer steps");
        assert!(large.recipe.clone().unwrap()["batch_size"].contains("fewer steps"));
        assert_eq!((large.dropout, large.recurrent_dropout), (0.18, 0.4), "0.35 and 0.8 × 0.5");
        assert_eq!(large.patience, MIN_PATIENCE, "30 ÷ 100, at least 2");
        assert_eq!(large.epochs, preset.epochs, "the most; the run plans them from its pace");
        assert_eq!(large.learning_rate_schedule, LearningRateSchedule::Exponential);

        let twelve_keys = choose(Preset::PianorollLstm, &none(), JSB_12_KEYS);
        assert_eq!(twelve_keys.batch_size, preset.batch_size);
        assert_eq!((twelve_keys.dropout, twelve_keys.recurrent_dropout), (0.26, 0.58));
        assert_eq!(twelve_keys.patience, 3, "30 ÷ 12");
    }

    #[test]
    fn a_finer_grid_of_the_same_music_is_not_more_data() {
        let preset = Preset::PianorollLstm.defaults();
        // JSB's 229 training chorales in 8th and 16th notes: 2× and 4× the frames.
        for frames in [27_614, 55_228] {
            let finer = choose(Preset::PianorollLstm, &none(), CorpusSize { items: frames, pieces: 229 });
            assert_eq!(for_the_corpus(&finer), preset, "{frames} frames");
            assert!(finer.recipe.unwrap()["batch_size"].contains("1.00× the pieces"));
        }
        // Shorter pieces are less music: the same chorales cut to half their length.
        let halves = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 13_807 / 2, pieces: 229 });
        assert_eq!(halves.batch_size, preset.batch_size, "as many pieces");
        // Fewer pieces of the same length: smaller batches, so that an epoch still
        // takes steps (4 × √0.25 = 2).
        let quarter = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 13_807 / 4, pieces: 57 });
        assert_eq!(quarter.batch_size, 2);
        assert!(halves.dropout > preset.dropout, "{}", halves.dropout);
    }

    #[test]
    fn a_budget_that_holds_less_than_half_the_presets_music_regularises_less() {
        let preset = Preset::PianorollLstm.defaults();
        let budget = HyperparameterOverrides { budget_minutes: Some(15.0), ..none() };
        // JSB in 16th notes: 55,228 frames, the same music as the reference.
        let sixteenths = CorpusSize { items: 55_228, pieces: 229 };
        let lstm = |overrides: &HyperparameterOverrides, corpus: CorpusSize, items_per_second: f64| {
            fitted(Preset::PianorollLstm, overrides, corpus, items_per_second)
        };
        // 900 s × 5,522 frames/s ÷ 55,228 frames = 90 epochs: 2 × 90/344 = 0.52, ^⅔ = 0.65.
        let short = lstm(&budget, sixteenths, 5_522.0);
        assert_eq!((short.dropout, short.recurrent_dropout), (0.23, 0.52));
        let reason = &short.recipe.unwrap()["recurrent_dropout"];
        assert!(reason.contains("× 0.65 for the budget: 15 minutes hold 90 epochs"), "{reason}");
        // An hour holds 360 epochs, more than half the 344 the preset's run trains: the preset's.
        let hour = lstm(&none(), sixteenths, 5_522.0);
        assert_eq!((hour.dropout, hour.recurrent_dropout), (preset.dropout, preset.recurrent_dropout));
        assert!(hour.recipe.unwrap()["dropout"].contains("× 1.00 for the budget"));
        // 12 keys at its measured 3,135 frames/s: 17 epochs are 204 passes over
        // the reference's music, more than half the 344 the preset's run trains.
        let twelve_keys = lstm(&budget, JSB_12_KEYS, 3_135.0);
        assert_eq!((twelve_keys.dropout, twelve_keys.recurrent_dropout), (0.26, 0.58));
        // A crawl: at least 0.4 of the corpus's regularisation.
        let crawl = lstm(&budget, sixteenths, 10.0);
        assert_eq!((crawl.dropout, crawl.recurrent_dropout), (0.14, 0.32));
        // What the request sets stays; the epochs it allows bound what the budget holds.
        let set = HyperparameterOverrides { recurrent_dropout: Some(0.7), epochs: Some(20), ..budget };
        let kept = lstm(&set, Reference::of(Preset::PianorollLstm).corpus, 5_522.0);
        assert_eq!(kept.recurrent_dropout, 0.7);
        assert!(kept.dropout < preset.dropout, "20 epochs of 344: {}", kept.dropout);
        assert!(!fits_to_budget(
            Preset::PianorollLstm,
            &HyperparameterOverrides { dropout: Some(0.1), recurrent_dropout: Some(0.2), ..none() }
        ));
        assert!(fits_to_budget(Preset::Fugue, &none()), "fugue's dropout, though no recurrent dropout");
    }

    #[test]
    fn the_budgets_share_counts_the_epochs_the_presets_run_trains_before_its_patience_ends_it() {
        for preset in PRESETS {
            let (reference, defaults) = (Reference::of(preset), preset.defaults());
            assert!(
                reference.epochs > defaults.patience,
                "{preset:?}: at least its patience and a best epoch"
            );
            assert!(reference.epochs <= defaults.epochs, "{preset:?}: at most its epochs");
        }
        // `fugue`'s own run stops by its patience at epoch 26 of its 40.
        let budget = HyperparameterOverrides { budget_minutes: Some(15.0), ..none() };
        let corpus = Reference::of(Preset::Fugue).corpus;
        let fugue_dropout =
            |items_per_second: f64| dropout_and_why(fitted(Preset::Fugue, &budget, corpus, items_per_second));
        // 15 minutes at 8,895 tokens/s hold 17 epochs: more than half of 26, so
        // the preset's 0.3 (against its 40 epochs it was a short run: × 0.91).
        let (dropout, reason) = fugue_dropout(8_895.0);
        assert_eq!(dropout, 0.3, "{reason}");
        assert!(reason.contains("hold 17 epochs"), "{reason}");
        assert!(reason.contains("against the 26 its run trains there"), "{reason}");
        // At 5,479 tokens/s, 10 epochs: 2 × 10.4/26 = 0.80, ^⅔ = 0.86.
        let (dropout, reason) = fugue_dropout(5_479.0);
        assert_eq!(dropout, 0.26, "{reason}");
    }

    #[test]
    fn a_small_corpus_the_budget_holds_all_the_presets_epochs_of_keeps_its_raised_regularisation() {
        let budget = HyperparameterOverrides { budget_minutes: Some(15.0), ..none() };
        // `classical-piano` on the 410 chorales: 1,493 tokens in 3 files, 0.01× the
        // music it was tuned on, at the 482 tokens/s measured: the budget holds all
        // 200 epochs, each repeating the corpus as one of the preset's does.
        let corpus = CorpusSize { items: 1_493, pieces: 3 };
        assert_eq!(
            choose(Preset::ClassicalPiano, &budget, corpus).dropout,
            0.36,
            "0.3 × 1.2 for the small corpus"
        );
        let piano_dropout = |items_per_second: f64| {
            dropout_and_why(fitted(Preset::ClassicalPiano, &budget, corpus, items_per_second))
        };
        let (dropout, reason) = piano_dropout(482.0);
        assert_eq!(dropout, 0.36, "{reason}");
        assert!(reason.contains("× 1.00 for the budget: 15 minutes hold 200 epochs"), "{reason}");
        // At 83 tokens/s, 50 of its 200 epochs: a short run all the same.
        let (dropout, reason) = piano_dropout(83.0);
        assert_eq!(dropout, 0.23, "0.36 × (2 × 50/200)^⅔ = 0.36 × 0.63: {reason}");
    }

    #[test]
    fn the_preset_keeps_its_decay_per_epoch_under_a_budget() {
        let overrides = HyperparameterOverrides { budget_minutes: Some(15.0), ..none() };
        for corpus in [JSB_12_KEYS, CorpusSize { items: 1_380_700, pieces: 22_900 }] {
            let chosen = choose(Preset::PianorollLstm, &overrides, corpus);
            let preset = Preset::PianorollLstm.defaults();
            assert_eq!(chosen.learning_rate_schedule, LearningRateSchedule::Exponential);
            assert_eq!(chosen.learning_rate_decay, preset.learning_rate_decay);
            let reason = &chosen.recipe.unwrap()["learning_rate_schedule"];
            assert!(reason.contains("× 0.99 after every epoch (the preset's decay)"), "{reason}");
        }
    }

    #[test]
    fn the_schedules_reason_names_the_decay_in_force() {
        let overrides = HyperparameterOverrides { learning_rate_decay: Some(0.997), ..none() };
        let chosen = choose(Preset::PianorollNade, &overrides, JSB_12_KEYS);
        let reason = &chosen.recipe.unwrap()["learning_rate_schedule"];
        assert!(reason.contains("× 0.997 after every epoch (the request's decay)"), "{reason}");
    }

    #[test]
    fn the_epochs_are_planned_from_the_pace_measured_and_leave_the_end_to_the_budget() {
        assert_eq!(planned_epochs(400, 0, 0.0, 900.0), 400, "no pace yet: the most");
        // 10 s an epoch: 1 done, 890 s left hold 89 more.
        assert_eq!(planned_epochs(400, 1, 10.0, 900.0), 90);
        // A part of an epoch left: planned, for the budget to cut short.
        assert_eq!(planned_epochs(400, 3, 30.0, 35.0), 4);
        // Faster epochs later (the machine got quieter): more planned, as they fit.
        assert_eq!(planned_epochs(400, 100, 600.0, 900.0), 150);
        assert_eq!(planned_epochs(400, 100, 300.0, 900.0), 300);
        // At most the preset's; the budget spent: the epochs done.
        assert_eq!(planned_epochs(400, 10, 10.0, 900.0), 400);
        assert_eq!(planned_epochs(400, 90, 900.0, 900.0), 90);
        assert_eq!(planned_epochs(400, 90, 950.0, 900.0), 90);
    }

    #[test]
    fn the_plan_is_recorded_with_the_pace_it_came_from() {
        let mut hp = choose(Preset::PianorollLstm, &none(), JSB_12_KEYS);
        let epoch = EpochMetrics::timed;
        record_plan(&mut hp, 19, &[epoch(1, 50.0, 3_000.0), epoch(2, 50.0, 5_000.0)]);
        assert_eq!(hp.epochs, 19);
        let reason = &hp.recipe.unwrap()["epochs"];
        assert!(
            reason.contains("2 epochs trained in 100 s at 4000 items/s measured; 19 planned"),
            "{reason}"
        );
        assert!(reason.contains("at most 400"), "{reason}");
    }

    #[test]
    fn what_the_request_sets_wins_and_says_so() {
        let overrides = HyperparameterOverrides {
            batch_size: Some(3),
            recurrent_dropout: Some(0.1),
            epochs: Some(7),
            learning_rate_schedule: Some(LearningRateSchedule::WarmupCosine),
            learning_rate_drops: Some(0),
            ..none()
        };
        let chosen =
            choose(Preset::PianorollLstm, &overrides, CorpusSize { items: 1_380_700, pieces: 22_900 });
        assert_eq!((chosen.batch_size, chosen.recurrent_dropout, chosen.epochs), (3, 0.1, 7));
        assert_eq!(chosen.learning_rate_schedule, LearningRateSchedule::WarmupCosine);
        assert_eq!(chosen.learning_rate_drops, 0);
        let reasons = chosen.recipe.unwrap();
        for name in
            ["batch_size", "recurrent_dropout", "epochs", "learning_rate_schedule", "learning_rate_drops"]
        {
            assert_eq!(reasons[name], "set by the request", "{name}");
        }
        assert_ne!(reasons["dropout"], "set by the request");
    }
}
