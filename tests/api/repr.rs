//! Representations on the shared corpora.

use std::collections::BTreeSet;

use std::path::Path;

use fugue::midi;
use fugue::model::artifact::{Representation, read_meta};
use fugue::model::presets::{Family, Preset, TokenRepresentation};
use fugue::repr::pianoroll::{self, BenchmarkSplits, Grid};
use fugue::repr::{DECODED_TICKS_PER_BEAT, Vocabulary, events, note_chord};

use crate::support::{midi_files, project_path, shared_data};

#[test]
fn jsb_mini_files_read_back_to_the_benchmark_rolls_exactly() {
    let splits = BenchmarkSplits::load(&shared_data("jsb-chorales/jsb-chorales-quarter.json")).unwrap();
    let mut checked = 0;
    for (split, rolls) in [("train", &splits.train), ("valid", &splits.valid), ("test", &splits.test)] {
        for path in midi_files(&shared_data(&format!("jsb-mini/{split}"))) {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let index: usize = stem.rsplit('_').next().unwrap().parse().unwrap();
            let score = midi::read(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(pianoroll::encode(&score, Grid::Quarter), rolls[index], "{stem}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} jsb-mini files found");
}

#[test]
fn benchmark_split_sizes_match_the_published_ones() {
    let splits = BenchmarkSplits::load(&shared_data("jsb-chorales/jsb-chorales-quarter.json")).unwrap();
    assert_eq!((splits.train.len(), splits.valid.len(), splits.test.len()), (229, 76, 77));
    let frames = |split: &Vec<Vec<pianoroll::Frame>>| split.iter().map(Vec::len).sum::<usize>();
    assert_eq!((frames(&splits.train), frames(&splits.valid), frames(&splits.test)), (13_807, 4_602, 4_725));
}

/// (pitch, start, end) in decoded ticks, one per onset and pitch.
fn onsets(score: &midi::Score) -> BTreeSet<(u8, u64, u64)> {
    let scale = |tick: u64| tick * u64::from(DECODED_TICKS_PER_BEAT) / u64::from(score.ticks_per_beat);
    score.parts.iter().flat_map(|p| &p.notes).map(|n| (n.pitch, scale(n.start), scale(n.end()))).collect()
}

#[test]
fn events_keep_every_chorale_note_exactly() {
    let config = events::EventsConfig::default();
    for path in midi_files(&shared_data("bach-chorales-midi")) {
        let score = midi::read(&std::fs::read(&path).unwrap()).unwrap();
        let decoded = events::decode(&events::encode(&score, &config), &config);
        let (ours, theirs) = (onsets(&score), onsets(&decoded));
        // Unisons between voices merge into one note of the longer duration.
        let merged: BTreeSet<(u8, u64)> = ours.iter().map(|&(p, s, _)| (p, s)).collect();
        let decoded: BTreeSet<(u8, u64)> = theirs.iter().map(|&(p, s, _)| (p, s)).collect();
        let lost: Vec<_> = merged.difference(&decoded).collect();
        let gained: Vec<_> = decoded.difference(&merged).collect();
        assert!(lost.is_empty() && gained.is_empty(), "{}: lost {lost:?}, gained {gained:?}", path.display());
        for &(pitch, start, end) in &theirs {
            let longest = ours.iter().filter(|n| n.0 == pitch && n.1 == start).map(|n| n.2).max();
            assert_eq!(longest, Some(end), "{}: pitch {pitch} at {start}", path.display());
        }
    }
}

#[test]
fn note_chord_vocabulary_of_the_chorales() {
    let config = note_chord::NoteChordConfig::default();
    let sequences: Vec<Vec<String>> = midi_files(&shared_data("bach-chorales-midi"))
        .iter()
        .map(|path| note_chord::encode(&midi::read(&std::fs::read(path).unwrap()).unwrap(), &config))
        .collect();
    let vocabulary = Vocabulary::build(sequences.iter().map(Vec::as_slice));
    // Four-voice chords with names: a large vocabulary, the tutorials' known limit.
    assert!(vocabulary.len() > 1000, "{}", vocabulary.len());
    for sequence in &sequences {
        let ids = vocabulary.encode(sequence).unwrap();
        let back: Vec<&str> = ids.iter().map(|&id| vocabulary.token(id).unwrap()).collect();
        assert_eq!(back, sequence.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let normal = note_chord::NoteChordConfig { normal_order: true, ..config };
    let normal_sequences: Vec<Vec<String>> = midi_files(&shared_data("bach-chorales-midi"))
        .iter()
        .map(|path| note_chord::encode(&midi::read(&std::fs::read(path).unwrap()).unwrap(), &normal))
        .collect();
    let normal_vocabulary = Vocabulary::build(normal_sequences.iter().map(Vec::as_slice));
    assert!(normal_vocabulary.len() < vocabulary.len() / 4, "{}", normal_vocabulary.len());
}

/// The `events` stream without parts, over both shared MIDI corpora, as a digest.
fn flat_events_digest() -> String {
    let config = events::EventsConfig::default();
    let mut paths = midi_files(&shared_data("bach-chorales-midi"));
    for split in ["train", "valid", "test"] {
        paths.extend(midi_files(&shared_data(&format!("jsb-mini/{split}"))));
    }
    assert_eq!(paths.len(), 422, "410 chorales and 12 jsb-mini files");
    let mut text = String::new();
    for path in &paths {
        let tokens: Vec<String> =
            events::encode(&usable(path), &config).iter().map(ToString::to_string).collect();
        text.push_str(&tokens.join(" "));
        text.push('\n');
    }
    fugue::shared::sha256_hex(text.as_bytes())
}

fn usable(path: &Path) -> midi::Score {
    midi::read_usable(&std::fs::read(path).unwrap(), false).unwrap()
}

fn chorale_scores() -> Vec<midi::Score> {
    midi_files(&shared_data("bach-chorales-midi")).iter().map(|path| usable(path)).collect()
}

/// The config the `fugue` preset trains with on these scores.
fn fugue_config(scores: &[midi::Score]) -> events::EventsConfig {
    let Family::Tokens(representation) = Preset::Fugue.family() else { panic!("fugue is a token preset") };
    match representation.for_corpus(scores) {
        TokenRepresentation::Events(config) => config,
        other => panic!("fugue trains on events, not {other:?}"),
    }
}

#[test]
fn a_corpus_without_parts_encodes_exactly_as_before_parts() {
    // The digest of the token streams of the code before parts (commit 186e320).
    let before = "189c32f12a98595160dee53ce083c5d27c4a31e78299532ddabd0aff20c98a63";
    assert_eq!(flat_events_digest(), before, "the events stream without parts changed");
    // A one-part corpus trains without parts, with the config of every earlier model.
    let mini: Vec<midi::Score> =
        midi_files(&shared_data("jsb-mini/train")).iter().map(|path| usable(path)).collect();
    assert_eq!(fugue_config(&mini), events::EventsConfig::default());
    // The bundled default, trained on the chorales with parts, records the
    // config the chorales get, and they still give exactly its vocabulary.
    let meta = read_meta(&project_path("models/default")).unwrap();
    let Representation::Events { config, vocabulary, parts } = meta.representation else {
        panic!("models/default is an events model")
    };
    assert_eq!(config, fugue_config(&chorale_scores()));
    let names: Vec<&str> = parts.iter().take(4).filter_map(|part| part.part.name.as_deref()).collect();
    assert_eq!(names, ["Alto", "Tenor", "Bass", "Soprano"], "the most common parts first");
    let sequences: Vec<Vec<String>> = chorale_scores()
        .iter()
        .map(|score| events::encode(score, &config).iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(Vocabulary::build(sequences.iter().map(Vec::as_slice)), vocabulary);
}

#[test]
fn chorale_voices_keep_their_parts_through_events_and_midi() {
    let scores = chorale_scores();
    let config = fugue_config(&scores);
    assert_eq!(config.max_parts, events::PART_LIMIT, "the chorales have parts");
    let scale = |score: &midi::Score, tick: u64| {
        tick * u64::from(DECODED_TICKS_PER_BEAT) / u64::from(score.ticks_per_beat)
    };
    for (score, path) in scores.iter().zip(midi_files(&shared_data("bach-chorales-midi"))) {
        let decoded = events::decode(&events::encode(score, &config), &config);
        let again = midi::read(&midi::write(&decoded)).unwrap();
        assert_eq!(again, decoded, "{}: MIDI keeps the decoded parts", path.display());
        let specs = |score: &midi::Score| score.parts.iter().map(events::PartSpec::of).collect::<Vec<_>>();
        assert_eq!(specs(&again), specs(score), "{}: names, programs, order", path.display());
        for (theirs, ours) in again.parts.iter().zip(&score.parts) {
            let notes: Vec<(u8, u64, u64)> =
                ours.notes.iter().map(|n| (n.pitch, scale(score, n.start), scale(score, n.end()))).collect();
            let back: Vec<(u8, u64, u64)> =
                theirs.notes.iter().map(|n| (n.pitch, n.start, n.end())).collect();
            assert_eq!(back, notes, "{}: every note of {:?} in its part", path.display(), ours.name);
        }
        let channels: Vec<u8> = again.parts.iter().map(|part| part.channel).collect();
        let expected: Vec<u8> = (0..16).filter(|&c| c != 9).take(channels.len()).collect();
        assert_eq!(channels, expected, "{}: a channel per part", path.display());
    }
    let satb = scores.iter().filter(|score| {
        let names: Vec<Option<&str>> = score.parts.iter().map(|part| part.name.as_deref()).collect();
        names == [Some("Soprano"), Some("Alto"), Some("Tenor"), Some("Bass")]
    });
    assert_eq!(satb.count(), 365, "the four-part chorales");
}

#[test]
fn events_vocabulary_of_the_chorales_with_and_without_parts() {
    let scores = chorale_scores();
    let vocabulary = |config: &events::EventsConfig| {
        let sequences: Vec<Vec<String>> = scores
            .iter()
            .map(|score| events::encode(score, config).iter().map(ToString::to_string).collect())
            .collect();
        let tokens: usize = sequences.iter().map(Vec::len).sum();
        (Vocabulary::build(sequences.iter().map(Vec::as_slice)), tokens)
    };
    let (flat, flat_tokens) = vocabulary(&events::EventsConfig::default());
    let (parts, parts_tokens) = vocabulary(&fugue_config(&scores));
    let kinds =
        |kind: &str| (0..parts.len() as u32).filter(|&id| parts.token(id).unwrap().starts_with(kind)).count();
    println!(
        "events on the 410 chorales: without parts {} tokens, {flat_tokens} in all; with parts {} tokens \
         ({} Part, {} Prog, {} Name), {parts_tokens} in all",
        flat.len(),
        parts.len(),
        kinds("Part_"),
        kinds("Prog_"),
        kinds("Name_")
    );
    assert_eq!(flat.len(), 117, "the bundled model's vocabulary");
    assert!(kinds("Part_") <= usize::from(events::PART_LIMIT));
    assert!(parts.len() <= flat.len() + 80, "parts cost a few dozen tokens, not hundreds: {}", parts.len());
    assert!(parts_tokens < flat_tokens * 3 / 2, "a Part per voice and position, no more: {parts_tokens}");
}
