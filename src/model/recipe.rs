//! Recipes that scale with the corpus: a preset's defaults were tuned by hand on
//! one corpus (its [`Reference`]); on a corpus `r` times as large (in training
//! frames or tokens) [`choose`] weakens the regularisation, grows the batch and
//! plans the epochs that fit in the time budget, and explains each choice.
//! A hyperparameter the request sets is kept as it is.
//!
//! The rules, with `r` = training items ÷ the reference's:
//! - regularisation scale `s` = 1 − 0.25·log10 r, within 0.4–1.2: `dropout` and
//!   `recurrent_dropout` are the preset's times `s` (at most 0.9);
//! - `batch_size` = the preset's × √r, to a power of two, 1–256 (never above the
//!   preset's on a smaller corpus, never below it on a larger one);
//! - `epochs` = what the budget holds at the preset's estimated pace
//!   ([`Reference::items_per_second`]), at most the preset's, at least 1;
//! - `patience` = the preset's share of its epochs, of the planned epochs, at least 2;
//! - `learning_rate_schedule`: when the budget, not the epochs asked for (or the
//!   preset's), bounds the run, a warm-up and a cosine over the planned epochs (the
//!   rate reaches 0 as the budget ends); otherwise the preset's decay per epoch.
//!
//! At the reference size the rules give the preset's own defaults back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hyperparameters::{HyperparameterOverrides, Hyperparameters};
use super::presets::Preset;
use super::training_record::LearningRateSchedule;

/// A corpus's training split, as the recipe reads it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorpusSize {
    /// Frames (piano-roll presets) or tokens (token and melody presets).
    pub items: u64,
    pub pieces: u64,
}

/// The corpus a preset's defaults were tuned on, and how fast the preset trains
/// at its defaults (one libtorch thread on a shared 2-core CPU, from the runs in
/// `models/README.md` and `fugue train` on the chorales).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reference {
    pub corpus: CorpusSize,
    pub items_per_second: f64,
}

impl Reference {
    pub fn of(preset: Preset) -> Reference {
        // JSB's training split at quarter notes; the 410 chorales' tokens less the
        // 15% held out.
        let jsb = CorpusSize { items: 13_807, pieces: 229 };
        let (corpus, items_per_second) = match preset {
            Preset::PianorollLstm => (jsb, 6_500.0),
            Preset::PianorollNade => (jsb, 3_300.0),
            Preset::PianorollSeq2seq => (jsb, 2_000.0),
            Preset::Fugue => (CorpusSize { items: 470_000, pieces: 348 }, 8_000.0),
            Preset::PlayBach => (CorpusSize { items: 50_000, pieces: 348 }, 20_000.0),
            Preset::ClassicalPiano => (CorpusSize { items: 40_000, pieces: 348 }, 4_000.0),
            Preset::FolkRnn => (CorpusSize { items: 60_000, pieces: 348 }, 15_000.0),
        };
        Reference { corpus, items_per_second }
    }
}

/// Why each hyperparameter the recipe decides has its value, by name.
pub type Reasons = BTreeMap<String, String>;

/// Fewest epochs without improvement before stopping, once scaled.
const MIN_PATIENCE: u32 = 2;
/// Largest batch the recipe chooses.
const MAX_BATCH: usize = 256;

/// The preset's hyperparameters (with the request's `overrides` in place) fitted to
/// `corpus` and its `budget_minutes`; [`Hyperparameters::recipe`] says why.
pub fn choose(preset: Preset, overrides: &HyperparameterOverrides, corpus: CorpusSize) -> Hyperparameters {
    let defaults = preset.defaults();
    let mut hp = overrides.apply_to(defaults.clone());
    let reference = Reference::of(preset);
    let ratio = corpus.items.max(1) as f64 / reference.corpus.items as f64;
    let size = format!(
        "{} items in {} pieces, {ratio:.2}× the {} of the preset's tuning",
        corpus.items, corpus.pieces, reference.corpus.items
    );
    let mut reasons = Reasons::new();
    let mut decide = |name: &str, set: bool, reason: String| {
        let reason = if set { "set by the request".to_owned() } else { reason };
        reasons.insert(name.to_owned(), reason);
    };

    let scale = (1.0 - 0.25 * ratio.log10()).clamp(0.4, 1.2);
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

    if overrides.batch_size.is_none() {
        hp.batch_size = batch_for(defaults.batch_size, ratio);
    }
    decide(
        "batch_size",
        overrides.batch_size.is_some(),
        format!("{} × √{ratio:.2}, to a power of two", defaults.batch_size),
    );

    let budget_seconds = hp.budget_minutes * 60.0;
    let epoch_seconds = corpus.items.max(1) as f64 / reference.items_per_second;
    let affordable = (budget_seconds / epoch_seconds).floor().max(1.0) as u32;
    if overrides.epochs.is_none() {
        hp.epochs = affordable.min(defaults.epochs);
    }
    decide(
        "epochs",
        overrides.epochs.is_some(),
        format!(
            "{affordable} epochs of about {epoch_seconds:.0} s ({} items/s estimated) fit in {} minutes; the preset allows {}",
            reference.items_per_second, hp.budget_minutes, defaults.epochs
        ),
    );

    if overrides.patience.is_none() {
        let share = f64::from(defaults.patience) / f64::from(defaults.epochs);
        hp.patience = ((f64::from(hp.epochs) * share).round() as u32).clamp(MIN_PATIENCE, defaults.patience);
    }
    decide(
        "patience",
        overrides.patience.is_some(),
        format!("the preset's {} of {} epochs, of {} epochs", defaults.patience, defaults.epochs, hp.epochs),
    );

    // The budget ends the run when it holds no more epochs than will be asked for.
    let budget_bounds = affordable <= hp.epochs;
    if overrides.learning_rate_schedule.is_none() {
        hp.learning_rate_schedule =
            if budget_bounds { LearningRateSchedule::WarmupCosine } else { defaults.learning_rate_schedule };
    }
    decide(
        "learning_rate_schedule",
        overrides.learning_rate_schedule.is_some(),
        if budget_bounds {
            "the budget ends the run: warm up, then a cosine to 0 over the planned epochs".to_owned()
        } else {
            format!("{} epochs fit in the budget: the preset's decay per epoch", hp.epochs)
        },
    );
    hp.recipe = Some(reasons);
    hp
}

/// The preset's batch × √ratio as a power of two: never below the preset's on a
/// larger corpus, never above it on a smaller one, 1 to [`MAX_BATCH`].
fn batch_for(preset_batch: usize, ratio: f64) -> usize {
    let scaled = (preset_batch as f64 * ratio.sqrt()).max(1.0);
    let power = 2f64.powf(scaled.log2().round()) as usize;
    let bounded = if ratio >= 1.0 { power.max(preset_batch) } else { power.min(preset_batch) };
    bounded.clamp(1, MAX_BATCH.max(preset_batch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> HyperparameterOverrides {
        HyperparameterOverrides::default()
    }

    #[test]
    fn at_the_reference_size_the_recipe_is_the_preset() {
        for preset in [Preset::PianorollLstm, Preset::PianorollNade, Preset::Fugue] {
            let chosen = choose(preset, &none(), Reference::of(preset).corpus);
            let defaults = preset.defaults();
            assert_eq!(Hyperparameters { recipe: None, ..chosen.clone() }, defaults, "{preset:?}");
            assert_eq!(chosen.recipe.unwrap().len(), 6);
        }
    }

    #[test]
    fn a_tiny_corpus_is_regularised_hard_in_small_batches() {
        let tiny = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 500, pieces: 8 });
        let preset = Preset::PianorollLstm.defaults();
        assert_eq!(tiny.batch_size, 1);
        assert!(tiny.dropout > preset.dropout && tiny.dropout <= 0.9, "{}", tiny.dropout);
        assert_eq!(tiny.recurrent_dropout, 0.9, "0.8 × 1.2, at most 0.9");
        assert_eq!((tiny.epochs, tiny.patience), (preset.epochs, preset.patience), "a tiny corpus fits");
        assert_eq!(tiny.learning_rate_schedule, preset.learning_rate_schedule);
    }

    #[test]
    fn a_large_corpus_is_regularised_less_in_larger_batches_and_fewer_epochs() {
        let preset = Preset::PianorollLstm.defaults();
        // 100 × JSB: 1.4 million frames, some 210 s an epoch at the estimated pace.
        let large = choose(Preset::PianorollLstm, &none(), CorpusSize { items: 1_380_700, pieces: 22_900 });
        assert_eq!(large.batch_size, 32, "4 × √100 = 40, to a power of two");
        assert_eq!((large.dropout, large.recurrent_dropout), (0.18, 0.4), "0.35 and 0.8 × 0.5");
        assert_eq!(large.epochs, 16, "60 minutes hold 16.9 epochs of 212 s");
        assert_eq!(large.patience, MIN_PATIENCE);
        assert_eq!(large.learning_rate_schedule, LearningRateSchedule::WarmupCosine);
        let reasons = large.recipe.unwrap();
        assert!(reasons["epochs"].contains("fit in 60 minutes"), "{reasons:?}");

        // A longer budget buys more epochs; the preset's 400 stay the most.
        let overrides = HyperparameterOverrides { budget_minutes: Some(600.0), ..none() };
        let longer =
            choose(Preset::PianorollLstm, &overrides, CorpusSize { items: 1_380_700, pieces: 22_900 });
        assert_eq!(longer.epochs, 169);
        assert!(longer.patience > large.patience && longer.patience <= preset.patience);
    }

    #[test]
    fn what_the_request_sets_wins_and_says_so() {
        let overrides = HyperparameterOverrides {
            batch_size: Some(3),
            recurrent_dropout: Some(0.1),
            epochs: Some(7),
            ..none()
        };
        let chosen =
            choose(Preset::PianorollLstm, &overrides, CorpusSize { items: 1_380_700, pieces: 22_900 });
        assert_eq!((chosen.batch_size, chosen.recurrent_dropout, chosen.epochs), (3, 0.1, 7));
        let preset = Preset::PianorollLstm.defaults();
        assert_eq!(
            chosen.learning_rate_schedule, preset.learning_rate_schedule,
            "7 epochs fit in the budget"
        );
        let reasons = chosen.recipe.unwrap();
        assert_eq!(reasons["batch_size"], "set by the request");
        assert_ne!(reasons["dropout"], "set by the request");
    }
}
