//! Every knob a preset has, declared once.
//!
//! [`for_each_hyperparameter!`] holds the one table: each hyperparameter's name,
//! type, meaning and allowed range. From it come the full [`Hyperparameters`] a
//! preset fills in, the [`HyperparameterOverrides`] of `POST /v1/training-jobs`
//! (its validation and its merge into a preset), the [`RANGES`] that the OpenAPI
//! document and the README's limits row are held to, and the flags of
//! `fugue train` (in the CLI, which expands the same table).

use serde::{Deserialize, Serialize};

use super::optim::OptimizerConfig;
use super::training_record::FitConfig;
use crate::shared::Preset;

/// Calls `$then! { … }` with every overridable hyperparameter as
/// `#[attributes of the full struct's field] name: Type, "meaning", Option<Range>;`.
#[macro_export]
macro_rules! for_each_hyperparameter {
    ($then:ident) => {
        $then! {
            epochs: u32, "Passes over the training data, at most.",
                Some($crate::model::hyperparameters::Range::from(1.0, 1000.0));
            batch_size: usize, "Training windows per optimizer step.",
                Some($crate::model::hyperparameters::Range::from(1.0, 1024.0));
            learning_rate: f64, "The optimizer's step size.",
                Some($crate::model::hyperparameters::Range::above(0.0, 1.0));
            learning_rate_decay: f64, "Multiplies the learning rate after every epoch (the exponential schedule).",
                Some($crate::model::hyperparameters::Range::above(0.0, 1.0));
            #[serde(default)]
            learning_rate_schedule: $crate::model::training_record::LearningRateSchedule,
                "How the learning rate moves: exponential (times the decay every epoch) or warmup-cosine (up over the first 5% of the planned steps, then a cosine to 0 at the last).",
                None;
            optimizer: $crate::model::optim::OptimizerKind, "The optimizer: adam or rmsprop.", None;
            weight_decay: f64, "L2 penalty on the weights.",
                Some($crate::model::hyperparameters::Range::from(0.0, 1.0));
            #[serde(default)]
            weight_averaging: f64,
                "Decay of the weights' moving average that validation and the saved model use; 0 uses the last step's weights.",
                Some($crate::model::hyperparameters::Range::from(0.0, 0.9999));
            layers: i64, "Stacked LSTM layers.", Some($crate::model::hyperparameters::Range::from(1.0, 8.0));
            hidden_size: i64, "Units per LSTM layer.",
                Some($crate::model::hyperparameters::Range::from(1.0, 4096.0));
            nade_hidden_size: i64, "Hidden units of the NADE output layer (piano-roll NADE only).",
                Some($crate::model::hyperparameters::Range::from(1.0, 4096.0));
            embedding_size: i64, "Token embedding width (token presets).",
                Some($crate::model::hyperparameters::Range::from(1.0, 2048.0));
            window: usize, "Tokens per training window (token presets).",
                Some($crate::model::hyperparameters::Range::from(2.0, 2048.0));
            dropout: f64, "Dropout between layers.", Some($crate::model::hyperparameters::Range::from(0.0, 0.9));
            #[serde(default)]
            recurrent_dropout: f64,
                "DropConnect on the LSTMs' recurrent weights, one mask per batch; 0 turns it off.",
                Some($crate::model::hyperparameters::Range::from(0.0, 0.9));
            #[serde(default)]
            position_period: i64,
                "Frames in the cycle whose position the piano-roll LSTM and NADE read beside the keys; 0 for none.",
                Some($crate::model::hyperparameters::Range::from(0.0, 64.0));
            transpose: u8,
                "Transpose each training sequence by a random shift of up to this many semitones every epoch (piano-roll presets).",
                Some($crate::model::hyperparameters::Range::from(0.0, 12.0));
            #[serde(default)]
            key_input: bool,
                "The piano-roll LSTM also reads how far its sequence was transposed (one-hot over the 12 pitch classes), so transposed copies add music without blurring the written keys; scoring and generation read no shift (piano-roll presets).",
                None;
            #[serde(default = "crate::model::hyperparameters::one_member")]
            members: i64,
                "Networks trained side by side on the same batches, each with its own weights and dropout; each key's probability is their mean, an ensemble in one model. Training and generation take this many times as long (piano-roll LSTM and NADE).",
                Some($crate::model::hyperparameters::Range::from(1.0, 8.0));
            teacher_forcing: f64, "Share of batches that start with teacher forcing (piano-roll seq2seq).",
                Some($crate::model::hyperparameters::Range::from(0.0, 1.0));
            teacher_forcing_decay: f64, "Multiplies the teacher-forcing share after every epoch.",
                Some($crate::model::hyperparameters::Range::from(0.0, 1.0));
            focal_gamma: f64, "Focal loss γ; 0 trains with plain binary cross-entropy (piano-roll seq2seq).",
                Some($crate::model::hyperparameters::Range::from(0.0, 10.0));
            focal_alpha: f64, "Focal loss α, the weight of keys that are on.",
                Some($crate::model::hyperparameters::Range::from(0.0, 1.0));
            patience: u32, "Epochs without a better validation loss before training stops.",
                Some($crate::model::hyperparameters::Range::from(1.0, 1000.0));
            #[serde(default)]
            learning_rate_drops: u32,
                "Times training goes back to its best epoch's weights at 0.3× the learning rate when its patience runs out, and waits its patience again, before it stops.",
                Some($crate::model::hyperparameters::Range::from(0.0, 10.0));
            validation_fraction: f64, "Share of the files held out for validation.",
                Some($crate::model::hyperparameters::Range::above(0.0, 0.5));
            #[serde(default = "crate::model::hyperparameters::default_budget_minutes")]
            budget_minutes: f64,
                "Minutes of training, at most: the recipe plans the epochs that fit, and training stops when they are spent, keeping the best epoch.",
                Some($crate::model::hyperparameters::Range::from(1.0, 10080.0));
            seed: u64, "Any whole number; seeds the initial weights, the split and every epoch's shuffles and dropout.", None;
            grid: $crate::repr::pianoroll::Grid, "Frames of the piano-roll presets: quarter, eighth or sixteenth notes.", None;
        }
    };
}

/// Where a hyperparameter's allowed values start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Low {
    From(f64),
    Above(f64),
}

/// The values a numeric hyperparameter may take: from (or above) `low`, up to `high`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub low: Low,
    pub high: f64,
}

impl Range {
    pub const fn from(low: f64, high: f64) -> Range {
        Range { low: Low::From(low), high }
    }

    pub const fn above(low: f64, high: f64) -> Range {
        Range { low: Low::Above(low), high }
    }

    pub fn admits(self, value: f64) -> bool {
        let above_low = match self.low {
            Low::From(low) => value >= low,
            Low::Above(low) => value > low,
        };
        above_low && value <= self.high
    }
}

impl std::fmt::Display for Range {
    /// As the README's limits table writes it: `1–1000` or `(0, 1]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.low {
            Low::From(low) => write!(f, "{low}–{}", self.high),
            Low::Above(low) => write!(f, "({low}, {}]", self.high),
        }
    }
}

/// A hyperparameter's name, meaning and range (`None` for enums and seeds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Declared {
    pub name: &'static str,
    pub meaning: &'static str,
    pub range: Option<Range>,
}

macro_rules! declare {
    ($($(#[$attribute:meta])* $name:ident: $type:ty, $meaning:literal, $range:expr;)*) => {
        /// Every overridable hyperparameter, in the table's order.
        pub const DECLARED: &[Declared] =
            &[$(Declared { name: stringify!($name), meaning: $meaning, range: $range }),*];

        /// Every knob a preset has, by the names users override them with.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Hyperparameters {
            $(#[doc = $meaning] $(#[$attribute])* pub $name: $type,)*
            /// Gradients are scaled down to this norm, when set (not overridable).
            pub clip_grad_norm: Option<f64>,
            /// Why the corpus's recipe chose each of its hyperparameters, by name
            /// (see `model::recipe`); none for hyperparameters taken as they are.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub recipe: Option<$crate::model::recipe::Reasons>,
        }

        /// Any preset hyperparameter, by name: the `hyperparameters` object of
        /// `POST /v1/training-jobs` and the flags of `fugue train`. Each number
        /// has a range ([`HyperparameterOverrides::validate`]); unknown names are refused.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct HyperparameterOverrides {
            $(
                #[doc = $meaning]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$type>,
            )*
        }

        impl HyperparameterOverrides {
            /// The preset's hyperparameters with these overrides in place.
            pub fn apply_to(&self, mut hyperparameters: Hyperparameters) -> Hyperparameters {
                $(if let Some(value) = self.$name { hyperparameters.$name = value; })*
                hyperparameters
            }
        }
    };
}

for_each_hyperparameter!(declare);

/// The time budget of a run that does not say (and of runs recorded before budgets).
pub const DEFAULT_BUDGET_MINUTES: f64 = 60.0;

pub fn default_budget_minutes() -> f64 {
    DEFAULT_BUDGET_MINUTES
}

/// Members of runs and artifacts recorded before `members` existed: one network.
pub fn one_member() -> i64 {
    1
}

/// The overridable hyperparameters that are numbers, with their ranges.
pub fn ranges() -> impl Iterator<Item = (&'static str, Range)> {
    DECLARED.iter().filter_map(|declared| Some((declared.name, declared.range?)))
}

/// The range of the numeric hyperparameter `name`.
pub fn range_of(name: &str) -> Option<Range> {
    ranges().find(|(declared, _)| *declared == name).map(|(_, range)| range)
}

/// A hyperparameter outside its range: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct OutOfRange {
    pub field: &'static str,
    pub message: String,
}

impl HyperparameterOverrides {
    /// The first value outside its range or not for `preset`, if any.
    pub fn validate(&self, preset: Preset) -> Result<(), OutOfRange> {
        // By name, as the request and the table spell them. A float that is not
        // finite serializes as null: present but not a number, so refused.
        let values = serde_json::to_value(self).unwrap_or_default();
        for (field, range) in ranges() {
            let Some(value) = values.get(field) else { continue };
            if !value.as_f64().is_some_and(|value| range.admits(value)) {
                let shown =
                    if value.is_null() { "not a finite number".to_owned() } else { value.to_string() };
                let allowed = match range.low {
                    Low::From(low) => format!("from {low}"),
                    Low::Above(low) => format!("above {low}"),
                };
                return Err(OutOfRange {
                    field,
                    message: format!("must be {allowed} up to {}, got {shown}", range.high),
                });
            }
        }
        // Every preset's `transpose` is 0, so the request must set it.
        if self.key_input == Some(true) && self.transpose.unwrap_or(0) == 0 {
            return Err(OutOfRange {
                field: "key_input",
                message:
                    "needs transpose of 1 or more: without transposed copies the shift it reads is always 0"
                        .to_owned(),
            });
        }
        let has_members = matches!(preset, Preset::PianorollLstm | Preset::PianorollNade);
        if self.members.is_some_and(|members| members > 1) && !has_members {
            return Err(OutOfRange {
                field: "members",
                message: format!(
                    "must be 1 for {}: only the piano-roll LSTM and NADE presets average members",
                    preset.name()
                ),
            });
        }
        Ok(())
    }
}

impl Hyperparameters {
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            clip_grad_norm: self.clip_grad_norm,
            weight_averaging: self.weight_averaging,
        }
    }

    pub fn fit(&self) -> FitConfig {
        FitConfig {
            epochs: self.epochs,
            patience: self.patience,
            seed: self.seed,
            learning_rate: self.learning_rate,
            learning_rate_decay: self.learning_rate_decay,
            schedule: self.learning_rate_schedule,
            budget_seconds: self.budget_minutes * 60.0,
            pause_after: None,
            plan_epochs: false,
            learning_rate_drops: self.learning_rate_drops,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn overrides(field: &str, value: serde_json::Value) -> HyperparameterOverrides {
        serde_json::from_value(json!({ field: value })).unwrap()
    }

    /// Each range of the table, at its last allowed values and its first refused ones.
    #[test]
    fn every_hyperparameter_range_holds_at_its_edges() {
        for (field, range) in ranges() {
            let integral = range.high.fract() == 0.0 && !matches!(range.low, Low::Above(_));
            let step = if integral { 1.0 } else { 1e-6 };
            let (lowest, below) = match range.low {
                Low::From(low) => (low, low - step),
                Low::Above(low) => (low + step, low),
            };
            let number = |value: f64| if integral { json!(value as i64) } else { json!(value) };
            for allowed in [lowest, range.high] {
                assert_eq!(
                    overrides(field, number(allowed)).validate(Preset::PianorollLstm),
                    Ok(()),
                    "{field} = {allowed}"
                );
            }
            for refused in [below, range.high + step] {
                // Unsigned fields cannot even hold -1: serde refuses it before validation.
                let Ok(parsed) =
                    serde_json::from_value::<HyperparameterOverrides>(json!({field: number(refused)}))
                else {
                    continue;
                };
                assert_eq!(
                    parsed.validate(Preset::PianorollLstm).unwrap_err().field,
                    field,
                    "{field} = {refused}"
                );
            }
        }
        let not_finite = HyperparameterOverrides { learning_rate: Some(f64::NAN), ..Default::default() };
        assert_eq!(not_finite.validate(Preset::PianorollLstm).unwrap_err().field, "learning_rate");
    }

    #[test]
    fn the_key_input_needs_transposed_copies_to_read() {
        let alone = HyperparameterOverrides { key_input: Some(true), ..Default::default() };
        let refused = alone.validate(Preset::PianorollLstm).unwrap_err();
        assert_eq!(refused.field, "key_input");
        assert!(refused.message.contains("transpose of 1 or more"), "{}", refused.message);
        let not_moved = HyperparameterOverrides { transpose: Some(0), ..alone.clone() };
        assert_eq!(not_moved.validate(Preset::PianorollLstm).unwrap_err().field, "key_input");
        assert_eq!(
            HyperparameterOverrides { transpose: Some(2), ..alone }.validate(Preset::PianorollLstm),
            Ok(())
        );
        for preset in <crate::shared::Preset as clap::ValueEnum>::value_variants() {
            assert_eq!(preset.defaults().transpose, 0, "{preset:?}: the check above reads the request alone");
        }
    }

    #[test]
    fn an_override_replaces_its_field_and_nothing_else() {
        let preset = crate::model::presets::Preset::Fugue.defaults();
        let changed = HyperparameterOverrides { hidden_size: Some(7), seed: Some(9), ..Default::default() }
            .apply_to(preset.clone());
        assert_eq!((changed.hidden_size, changed.seed), (7, 9));
        assert_eq!(Hyperparameters { hidden_size: preset.hidden_size, seed: preset.seed, ..changed }, preset);
    }

    #[test]
    fn members_are_refused_where_the_network_has_none() {
        let ensemble = HyperparameterOverrides { members: Some(4), ..Default::default() };
        assert_eq!(ensemble.validate(Preset::PianorollNade), Ok(()));
        let refused = ensemble.validate(Preset::Fugue).unwrap_err();
        assert_eq!(refused.field, "members");
        assert!(refused.message.contains("must be 1 for fugue"), "{}", refused.message);
        let single = HyperparameterOverrides { members: Some(1), ..Default::default() };
        assert_eq!(single.validate(Preset::PianorollSeq2seq), Ok(()));
    }
}
