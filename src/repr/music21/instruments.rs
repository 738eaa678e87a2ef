//! The instruments music21 makes of track names and program changes
//! (`midi.translate.midiEventToInstrument`, `instrument.fromString`), and its
//! `instrument.deduplicate`. They decide which notes `partitionByInstrument` puts in
//! its first part, and (being zero-length elements) where rests split.
//!
//! `instruments.json` holds the tables this needs, exported from music21 10.5.1
//! (BSD-3-Clause): every name music21 recognises (`instrumentLookup.allToClassName`,
//! in many languages) with its class, the word count of each class's best name, each
//! class's ancestors, the class of each General MIDI program and the default names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Deserialize)]
struct Tables {
    aliases: BTreeMap<String, String>,
    best_name_words: BTreeMap<String, usize>,
    ancestors: BTreeMap<String, Vec<String>>,
    program_classes: Vec<String>,
    default_names: BTreeMap<String, String>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        serde_json::from_str(include_str!("instruments.json")).expect("the bundled instrument tables parse")
    })
}

/// The class music21 uses for an instrument it does not recognise.
const GENERIC: &str = "Instrument";

/// An `Instrument` element: its class, `partName` and `instrumentName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub class: String,
    pub part_name: Option<String>,
    pub instrument_name: Option<String>,
}

/// Where the instrument came from.
pub enum Source<'a> {
    TrackName(&'a str),
    InstrumentName(&'a str),
    Program { program: u8, channel: u8 },
}

pub fn instrument(source: Source<'_>) -> Instrument {
    let (kind_is_track, text) = match source {
        Source::Program { channel: 9, .. } => {
            return Instrument {
                class: "UnpitchedPercussion".to_owned(),
                part_name: None,
                instrument_name: Some("Percussion".to_owned()),
            };
        }
        Source::Program { program, .. } => {
            let class = tables().program_classes[usize::from(program.min(127))].clone();
            let instrument_name = tables().default_names.get(&class).cloned();
            return Instrument { class, part_name: None, instrument_name };
        }
        Source::TrackName(text) => (true, text),
        Source::InstrumentName(text) => (false, text),
    };
    let name = text.split('\0').next().unwrap_or_default().trim().to_owned();
    let class = if name.is_empty() { None } else { class_of(&name) };
    let instrument_name = class.as_ref().map(|_| name.clone());
    let class = class.unwrap_or_else(|| GENERIC.to_owned());
    let lower = name.to_lowercase();
    let numbered = |prefix: &str| {
        let rest = lower.replace(prefix, "");
        !rest.is_empty() && rest.chars().all(|c| c.is_numeric())
    };
    if name.is_empty()
        || lower == "instrument"
        || lower == "inst"
        || numbered("instrument ")
        || numbered("inst ")
    {
        return Instrument { class, part_name: None, instrument_name };
    }
    if kind_is_track {
        Instrument { class, part_name: Some(name), instrument_name }
    } else {
        Instrument { class, part_name: None, instrument_name: Some(name) }
    }
}

/// `instrument.fromString`: every run of words, shortest first, looked up; a later
/// match wins when its class's best name has at least as many words and it is not
/// an ancestor of the class chosen so far.
fn class_of(name: &str) -> Option<String> {
    let cleaned: String =
        name.replace('.', " ").to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut best: Option<&String> = None;
    for length in 1..=words.len() {
        for start in 0..=words.len() - length {
            let Some(class) = tables().aliases.get(&words[start..start + length].join(" ")) else { continue };
            let words_of = |class: &String| tables().best_name_words.get(class).copied().unwrap_or(0);
            let better = match best {
                None => true,
                Some(current) => {
                    words_of(class) >= words_of(current)
                        && !tables().ancestors.get(current).is_some_and(|ancestors| ancestors.contains(class))
                }
            };
            if better {
                best = Some(class);
            }
        }
    }
    best.cloned()
}

/// `instrument.deduplicate` on one part's instruments (sorted). music21's offset
/// tree hands it all of a part's instruments as one group, whatever their offsets,
/// and so does this. Returns the indices to remove; survivors may be renamed.
pub fn deduplicate(instruments: &mut [Instrument]) -> BTreeSet<usize> {
    if instruments.len() < 2 {
        return BTreeSet::new();
    }
    let part_names: BTreeSet<&String> = instruments.iter().filter_map(|i| i.part_name.as_ref()).collect();
    let names: BTreeSet<&String> = instruments.iter().filter_map(|i| i.instrument_name.as_ref()).collect();
    if part_names.len() > 1 || names.len() > 1 {
        return BTreeSet::new();
    }
    let (part_name, name) = (part_names.first().map(|s| (*s).clone()), names.first().map(|s| (*s).clone()));
    let classes: BTreeSet<&String> = instruments.iter().map(|i| &i.class).collect();
    if classes.len() == 1 {
        instruments[0].part_name = part_name;
        instruments[0].instrument_name = name;
        return (1..instruments.len()).collect();
    }
    let mut removed = BTreeSet::new();
    for (index, instrument) in instruments.iter_mut().enumerate() {
        if instrument.class == GENERIC {
            removed.insert(index);
        } else {
            instrument.part_name = part_name.clone();
            instrument.instrument_name = name.clone();
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_programs_become_instruments_as_in_music21() {
        let soprano = instrument(Source::TrackName("Soprano"));
        assert_eq!(soprano.instrument_name.as_deref(), Some("Soprano"));
        assert_eq!(soprano.part_name.as_deref(), Some("Soprano"));
        let cornet = instrument(Source::TrackName("Cornet 1"));
        assert_eq!((cornet.class.as_str(), cornet.instrument_name), (GENERIC, None));
        let piano = instrument(Source::Program { program: 0, channel: 0 });
        assert_eq!(piano.instrument_name.as_deref(), Some("Piano"));
        let drums = instrument(Source::Program { program: 0, channel: 9 });
        assert_eq!(drums.instrument_name.as_deref(), Some("Percussion"));
    }

    #[test]
    fn a_generic_instrument_gives_way_to_a_known_one() {
        let mut pair = vec![
            instrument(Source::TrackName("Cornet 1")),
            instrument(Source::Program { program: 0, channel: 0 }),
        ];
        assert_eq!(deduplicate(&mut pair), BTreeSet::from([0]));
        assert_eq!(pair[1].part_name.as_deref(), Some("Cornet 1"));
        // Two names: nothing is removed.
        let mut named = vec![
            instrument(Source::TrackName("Soprano")),
            instrument(Source::Program { program: 0, channel: 0 }),
        ];
        assert!(deduplicate(&mut named).is_empty());
    }
}
