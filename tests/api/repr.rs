//! Representations on the shared corpora.

use std::collections::BTreeSet;

use fugue::midi;
use fugue::repr::pianoroll::{self, BenchmarkSplits, Grid};
use fugue::repr::{DECODED_TICKS_PER_BEAT, Vocabulary, events, note_chord};

use crate::support::{midi_files, shared_data};

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
