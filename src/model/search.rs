//! A hyperparameter search as a training job asks for it (how many trials, the
//! minutes they share, the space their hyperparameters are drawn from), each
//! preset's default space, the seeded draw of the trials, and what the search
//! found, as the job and the model artifact record it. The schedule that trains
//! the trials (successive halving) is `train::search`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::hyperparameters::{self, HyperparameterOverrides};
use super::presets::{Family, Preset};
use super::sampling::Rng;
use super::training_record::FitOutcome;

/// Fewest trials a search trains: fewer is a single run.
pub const MIN_TRIALS: u32 = 2;
/// Most trials a search trains: five rungs of halving, and a search record (in the
/// job, its events and the model's `meta.json`) of a few kilobytes.
pub const MAX_TRIALS: u32 = 32;

/// `search` of `POST /v1/training-jobs`: train `trials` variants of the preset,
/// their hyperparameters drawn from `space` with the job's seed, by successive
/// halving within `budget_minutes` in all, and register the best by validation loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"trials": 8, "budget_minutes": 120, "space": {"learning_rate": {"low": 0.0005, "high": 0.005, "scale": "log"}, "dropout": {"low": 0.1, "high": 0.5}}}))]
pub struct SearchRequest {
    /// Variants trained: 2 to 32.
    #[schema(minimum = 2, maximum = 32)]
    pub trials: u32,
    /// Minutes of training every trial's epochs take together, at most: 1 to 10080.
    /// It takes the place of `hyperparameters.budget_minutes`.
    #[schema(minimum = 1, maximum = 10080)]
    pub budget_minutes: f64,
    /// The range of each hyperparameter searched, by name. Default: the preset's
    /// space (`learning_rate` ÷4 to ×4 of the preset's on a log scale, `dropout`
    /// ±0.2, `hidden_size` half to whole, and one of the preset's own: see the
    /// README), less any hyperparameter the request sets. A job shows the space
    /// it searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Interval>>)]
    pub space: Option<Space>,
}

/// Ranges by hyperparameter name.
pub type Space = BTreeMap<String, Interval>;

/// The values a searched hyperparameter is drawn from, uniformly on its scale:
/// `low` to `high` (both allowed values of it, `low` below `high`; whole numbers
/// for whole-number hyperparameters).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// `linear` (the default) or `log` (`low` above 0).
    #[serde(default)]
    pub scale: IntervalScale,
}

impl std::fmt::Display for Interval {
    /// As the README's table writes it: `0.0005–0.008 (log)`, `128–256`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}–{}", self.low, self.high)?;
        if self.scale == IntervalScale::Log {
            write!(f, " (log)")?;
        }
        Ok(())
    }
}

/// How an interval is drawn from: evenly, or evenly in the logarithm (a learning
/// rate as likely in each decade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntervalScale {
    #[default]
    Linear,
    Log,
}

/// A space written as `fugue train --search-space` also takes it, for a shell:
/// `dropout=0.1..0.5,learning_rate=1e-4..1e-2:log`. The ranges are checked as a
/// request's are ([`SearchRequest::check`]).
pub fn parse_space_flag(text: &str) -> Result<Space, String> {
    text.split(',')
        .map(|entry| {
            let wrong = || format!("`{entry}`: expected NAME=LOW..HIGH or NAME=LOW..HIGH:log");
            let (name, range) = entry.trim().split_once('=').ok_or_else(wrong)?;
            let (range, scale) = match range.split_once(':') {
                Some((range, "log")) => (range, IntervalScale::Log),
                Some((range, "linear")) => (range, IntervalScale::Linear),
                Some(_) => return Err(wrong()),
                None => (range, IntervalScale::Linear),
            };
            let (low, high) = range.split_once("..").ok_or_else(wrong)?;
            let number = |text: &str| text.trim().parse::<f64>().map_err(|_| wrong());
            Ok((name.trim().to_owned(), Interval { low: number(low)?, high: number(high)?, scale }))
        })
        .collect()
}

/// A field of the request at fault (`search.trials`, `search.space.dropout`, …)
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Refused {
    pub field: String,
    pub message: String,
}

fn refused(field: impl Into<String>, message: impl Into<String>) -> Refused {
    Refused { field: field.into(), message: message.into() }
}

/// The hyperparameters of `preset` a search may draw: the numbers its network and
/// optimizer read. Left out: `epochs` and `budget_minutes` (the search plans them),
/// `patience`, and `validation_fraction` (it moves the validation split, so the
/// trials' losses would not compare).
pub fn searchable(preset: Preset) -> Vec<&'static str> {
    let mut names = vec![
        "batch_size",
        "learning_rate",
        "learning_rate_decay",
        "weight_decay",
        "weight_averaging",
        "layers",
        "hidden_size",
        "dropout",
        "recurrent_dropout",
    ];
    match preset.family() {
        Family::Tokens(_) | Family::MelodyChords(_) => names.extend(["embedding_size", "window"]),
        Family::Pianoroll => {
            names.extend(["position_period", "transpose"]);
            if preset == Preset::PianorollNade {
                names.push("nade_hidden_size");
            }
        }
        Family::PianorollSeq2seq => {
            names.extend(["window", "teacher_forcing", "teacher_forcing_decay", "focal_gamma", "focal_alpha"])
        }
    }
    names
}

/// The preset's own space: its learning rate ÷4 to ×4 (log), its dropout ±0.2,
/// half its hidden size to all of it, and the knob that matters most beside those
/// in its family (the embedding of token presets, the recurrent dropout of
/// `pianoroll-lstm`, the NADE layer of `pianoroll-nade`, the teacher forcing's
/// decay of `pianoroll-seq2seq`); less what `overrides` sets.
pub fn default_space(preset: Preset, overrides: &HyperparameterOverrides) -> Space {
    let hp = preset.defaults();
    // To two decimals: 0.3 − 0.2 is 0.1, not 0.09999999999999998.
    let linear = |low: f64, high: f64| Interval {
        low: (low * 100.0).round() / 100.0,
        high: (high * 100.0).round() / 100.0,
        scale: IntervalScale::Linear,
    };
    let halved = |size: i64| linear((size / 2).max(1) as f64, size as f64);
    let mut space = Space::new();
    let learning_rate = Interval {
        low: hp.learning_rate / 4.0,
        high: (hp.learning_rate * 4.0).min(1.0),
        scale: IntervalScale::Log,
    };
    space.insert("learning_rate".to_owned(), learning_rate);
    space.insert("dropout".to_owned(), linear((hp.dropout - 0.2).max(0.0), (hp.dropout + 0.2).min(0.9)));
    space.insert("hidden_size".to_owned(), halved(hp.hidden_size));
    let (name, own) = match preset {
        Preset::PianorollLstm => ("recurrent_dropout", linear(hp.recurrent_dropout - 0.2, 0.9)),
        Preset::PianorollNade => ("nade_hidden_size", halved(hp.nade_hidden_size)),
        Preset::PianorollSeq2seq => ("teacher_forcing_decay", linear(0.8, 1.0)),
        _ => ("embedding_size", halved(hp.embedding_size)),
    };
    space.insert(name.to_owned(), own);
    let set = serde_json::to_value(overrides).unwrap_or_default();
    space.retain(|name, _| set.get(name).is_none());
    space
}

/// Whether a hyperparameter of `preset` holds whole numbers (its default does).
fn whole(preset: Preset, name: &str) -> bool {
    let defaults = serde_json::to_value(preset.defaults()).unwrap_or_default();
    defaults.get(name).is_some_and(|value| value.is_u64() || value.is_i64())
}

impl SearchRequest {
    /// The first field at fault, for a search of `preset` beside the request's
    /// `overrides`.
    pub fn check(&self, preset: Preset, overrides: &HyperparameterOverrides) -> Result<(), Refused> {
        if overrides.budget_minutes.is_some() {
            let message = "a search's trials share `search.budget_minutes` instead";
            return Err(refused("hyperparameters.budget_minutes", message));
        }
        if !(MIN_TRIALS..=MAX_TRIALS).contains(&self.trials) {
            return Err(refused(
                "search.trials",
                format!("must be {MIN_TRIALS} to {MAX_TRIALS}, got {}", self.trials),
            ));
        }
        let budget = hyperparameters::range_of("budget_minutes").expect("budget_minutes has a range");
        if !budget.admits(self.budget_minutes) {
            return Err(refused(
                "search.budget_minutes",
                format!("must be {budget} minutes, got {}", self.budget_minutes),
            ));
        }
        let set = serde_json::to_value(overrides).unwrap_or_default();
        let allowed = searchable(preset);
        for (name, interval) in self.space.iter().flatten() {
            let field = format!("search.space.{name}");
            if !allowed.contains(&name.as_str()) {
                let message = format!(
                    "`{name}` is not a hyperparameter the {} preset searches; it searches {}",
                    preset.name(),
                    allowed.join(", ")
                );
                return Err(refused(field, message));
            }
            if set.get(name).is_some() {
                return Err(refused(field, "set in `hyperparameters` too: search it or set it, not both"));
            }
            let range = hyperparameters::range_of(name).expect("every searchable hyperparameter has a range");
            let Interval { low, high, scale } = *interval;
            if !(low.is_finite() && high.is_finite() && low < high) {
                return Err(refused(
                    field,
                    format!("needs finite bounds with low below high, got {interval}"),
                ));
            }
            if !(range.admits(low) && range.admits(high)) {
                return Err(refused(field, format!("must lie within {name}'s {range}, got {interval}")));
            }
            if scale == IntervalScale::Log && low <= 0.0 {
                return Err(refused(field, format!("a log scale needs low above 0, got {low}")));
            }
            if whole(preset, name) && (low.fract() != 0.0 || high.fract() != 0.0) {
                return Err(refused(field, format!("{name} takes whole numbers, got {interval}")));
            }
        }
        Ok(())
    }

    /// This search with its space filled in: the preset's default unless it names one.
    pub fn resolved(mut self, preset: Preset, overrides: &HyperparameterOverrides) -> SearchRequest {
        self.space.get_or_insert_with(|| default_space(preset, overrides));
        self
    }
}

/// The values of each hyperparameter searched, by name.
pub type Drawn = BTreeMap<String, Value>;

/// `trials` points of `space`, each drawn uniformly on its scales from a
/// generator seeded with `seed` (the same seed, the same trials); whole-number
/// hyperparameters are drawn from their whole numbers.
pub fn draw(preset: Preset, space: &Space, trials: u32, seed: u64) -> Vec<Drawn> {
    let mut rng = Rng::new(seed);
    (0..trials)
        .map(|_| {
            space
                .iter()
                .map(|(name, interval)| {
                    let u = rng.next_f64();
                    let Interval { low, high, scale } = *interval;
                    let value = if whole(preset, name) {
                        Value::from((low + (u * (high - low + 1.0)).floor()).min(high) as i64)
                    } else {
                        let x = match scale {
                            IntervalScale::Linear => low + u * (high - low),
                            IntervalScale::Log => (low.ln() + u * (high.ln() - low.ln())).exp(),
                        };
                        Value::from(x)
                    };
                    (name.clone(), value)
                })
                .collect()
        })
        .collect()
}

/// The request's overrides with a trial's drawn values added.
pub fn with_drawn(
    overrides: &HyperparameterOverrides,
    drawn: &Drawn,
) -> anyhow::Result<HyperparameterOverrides> {
    let mut values = serde_json::to_value(overrides)?;
    let object = values.as_object_mut().ok_or_else(|| anyhow::anyhow!("overrides are an object"))?;
    object.extend(drawn.iter().map(|(name, value)| (name.clone(), value.clone())));
    Ok(serde_json::from_value(values)?)
}

/// How one rung of a trial ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RungResult {
    /// Epochs the trial had trained when the rung ended.
    pub epochs: u32,
    /// Its best validation loss by then; none when it diverged.
    pub best_valid_loss: Option<f64>,
}

impl RungResult {
    /// How a rung that trained to its end (or its budget, or its patience) ended.
    pub fn of(outcome: &FitOutcome) -> RungResult {
        let best = outcome.best_valid_loss;
        RungResult {
            epochs: outcome.history.last().map_or(0, |metrics| metrics.epoch),
            best_valid_loss: best.is_finite().then_some(best),
        }
    }
}

/// One trial of a search, as the job and the model artifact record it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrialRecord {
    /// 0 to trials − 1.
    pub trial: u32,
    /// The values drawn from the space for it.
    #[schema(value_type = Object)]
    pub hyperparameters: Drawn,
    /// The rung it trains in, or ended in (0 first).
    pub rung: u32,
    /// Each rung it finished, in order.
    pub rungs: Vec<RungResult>,
    /// Its best validation loss so far; none before its first epoch, or once it diverged.
    pub best_valid_loss: Option<f64>,
    /// Successive halving stopped it after its rung: weaker than the trials that went on.
    pub stopped: bool,
    /// Why it ended before its rung did (its loss diverged), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a search did: every trial, the halving, and the trial that won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SearchRecord {
    /// Each rung keeps the best 1/`eta` of its trials by validation loss.
    pub eta: u32,
    /// Rungs in the schedule.
    pub rungs: u32,
    pub trials: Vec<TrialRecord>,
    /// The trial whose model is registered, once the last rung has ended: its
    /// trial, or, when that one diverged, the best of the others by validation loss.
    pub winner: Option<u32>,
}

impl TrialRecord {
    /// Records how rung `rung` ended (again, when a resumed search trained it again).
    pub fn finish_rung(&mut self, rung: usize, result: RungResult, error: Option<String>) {
        self.best_valid_loss = result.best_valid_loss;
        self.rungs.truncate(rung);
        self.rungs.push(result);
        self.error = error;
    }
}

impl SearchRecord {
    /// A search about to start: every trial drawn, none trained.
    pub fn fresh(drawn: Vec<Drawn>, eta: u32, rungs: u32) -> SearchRecord {
        let trials = drawn
            .into_iter()
            .enumerate()
            .map(|(trial, hyperparameters)| TrialRecord {
                trial: trial as u32,
                hyperparameters,
                rung: 0,
                rungs: Vec::new(),
                best_valid_loss: None,
                stopped: false,
                error: None,
            })
            .collect();
        SearchRecord { eta, rungs, trials, winner: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_space_flag_reads_as_its_json_does() {
        let json: Space = serde_json::from_str(
            r#"{"dropout": {"low": 0.1, "high": 0.5}, "learning_rate": {"low": 1e-4, "high": 1e-2, "scale": "log"}}"#,
        )
        .unwrap();
        assert_eq!(parse_space_flag("dropout=0.1..0.5, learning_rate=1e-4..1e-2:log"), Ok(json));
        for wrong in ["dropout", "dropout=0.1", "dropout=0.1..x", "dropout=0.1..0.5:cubic", ""] {
            let error = parse_space_flag(wrong).unwrap_err();
            assert!(error.contains("expected NAME=LOW..HIGH"), "{wrong}: {error}");
        }
    }

    fn none() -> HyperparameterOverrides {
        HyperparameterOverrides::default()
    }

    #[test]
    fn every_preset_s_default_space_passes_its_own_checks() {
        for &preset in <Preset as clap::ValueEnum>::value_variants() {
            let search =
                SearchRequest { trials: 4, budget_minutes: 60.0, space: None }.resolved(preset, &none());
            assert_eq!(search.space.as_ref().unwrap().len(), 4, "{preset:?}");
            assert_eq!(search.check(preset, &none()), Ok(()), "{preset:?}");
        }
    }

    #[test]
    fn what_the_request_sets_leaves_the_default_space() {
        let overrides = HyperparameterOverrides { hidden_size: Some(16), ..none() };
        let space = default_space(Preset::Fugue, &overrides);
        assert!(!space.contains_key("hidden_size"));
        assert!(space.contains_key("learning_rate"));
    }

    #[test]
    fn a_seed_draws_the_same_trials_within_the_space() {
        let space: Space = serde_json::from_value(serde_json::json!({
            "learning_rate": {"low": 1e-4, "high": 1e-2, "scale": "log"},
            "hidden_size": {"low": 8, "high": 10},
        }))
        .unwrap();
        let drawn = draw(Preset::Fugue, &space, 32, 7);
        assert_eq!(drawn, draw(Preset::Fugue, &space, 32, 7));
        assert_ne!(drawn, draw(Preset::Fugue, &space, 32, 8));
        let mut sizes = std::collections::BTreeSet::new();
        for trial in &drawn {
            let rate = trial["learning_rate"].as_f64().unwrap();
            assert!((1e-4..=1e-2).contains(&rate), "{rate}");
            sizes.insert(trial["hidden_size"].as_i64().expect("a whole number"));
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [8, 9, 10], "every whole number, both ends");
        // On a log scale, a decade each side of the middle is about as likely.
        let low = drawn.iter().filter(|trial| trial["learning_rate"].as_f64().unwrap() < 1e-3).count();
        assert!((8..=24).contains(&low), "{low} of 32 below the geometric middle");
        let overrides =
            with_drawn(&HyperparameterOverrides { epochs: Some(2), ..none() }, &drawn[0]).unwrap();
        assert_eq!(overrides.epochs, Some(2));
        assert_eq!(overrides.hidden_size, drawn[0]["hidden_size"].as_i64());
    }
}
