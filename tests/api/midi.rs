//! The MIDI reader and writer on real music, checked against an independent reader.

use std::path::Path;
use std::process::Command;

use fugue::midi::{self, Score};
use serde_json::{Value, json};

use crate::support::{midi_files, project_path, shared_data, venv_python};

fn chorales() -> Vec<std::path::PathBuf> {
    let files = midi_files(&shared_data("bach-chorales-midi"));
    assert_eq!(files.len(), 410, "the shared chorale corpus");
    files
}

#[test]
fn every_chorale_round_trips_exactly() {
    for path in chorales() {
        let first = midi::read(&std::fs::read(&path).unwrap()).unwrap();
        assert!(first.note_count() > 0, "{}", path.display());
        let second = midi::read(&midi::write(&first)).unwrap();
        assert_eq!(first, second, "{}", path.display());
    }
}

/// mido's name of a key signature.
fn key_name(sharps: i8, minor: bool) -> String {
    const MAJOR: [&str; 15] =
        ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"];
    const MINOR: [&str; 15] =
        ["Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#", "G#", "D#", "A#"];
    let index = usize::try_from(sharps + 7).unwrap();
    if minor { format!("{}m", MINOR[index]) } else { MAJOR[index].to_owned() }
}

/// fugue's score in the shape `tests/tools/midi_summary.py` prints.
fn summary(score: &Score) -> Value {
    let mut notes: Vec<[u64; 6]> = score
        .parts
        .iter()
        .flat_map(|part| {
            part.notes.iter().map(|n| {
                let (channel, program) = (u64::from(part.channel), u64::from(part.program));
                [channel, program, u64::from(n.pitch), u64::from(n.velocity), n.start, n.end()]
            })
        })
        .collect();
    notes.sort_unstable();
    json!({
        "ticks_per_beat": score.ticks_per_beat,
        "tempos": score.tempos.iter().map(|t| json!([t.tick, t.micros_per_beat])).collect::<Vec<_>>(),
        "time_signatures": score.time_signatures.iter().map(|t| json!([t.tick, t.numerator, t.denominator])).collect::<Vec<_>>(),
        "key_signatures": score.key_signatures.iter().map(|k| json!([k.tick, key_name(k.sharps, k.minor)])).collect::<Vec<_>>(),
        "notes": notes,
    })
}

/// What mido reads from each file (`tests/tools/midi_summary.py`).
pub fn mido_summaries(paths: &[&Path]) -> Vec<Value> {
    let output = Command::new(venv_python())
        .arg(project_path("tests/tools/midi_summary.py"))
        .args(paths)
        .output()
        .expect("the project venv's python (make test installs mido into it)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn mido_reads_what_fugue_writes_and_agrees_on_every_note() {
    let dir = tempfile::tempdir().unwrap();
    let mut scores = Vec::new();
    let mut written = Vec::new();
    for (index, path) in chorales().iter().enumerate() {
        let score = midi::read(&std::fs::read(path).unwrap()).unwrap();
        let out = dir.path().join(format!("{index}.mid"));
        std::fs::write(&out, midi::write(&score)).unwrap();
        scores.push(score);
        written.push(out);
    }
    let paths: Vec<&Path> = written.iter().map(|p| p.as_path()).collect();
    let summaries = mido_summaries(&paths);
    assert_eq!(summaries.len(), scores.len());
    for ((score, mut theirs), path) in scores.iter().zip(summaries).zip(&written) {
        assert_eq!(theirs["type"], 1, "{}: fugue writes format 1", path.display());
        theirs.as_object_mut().unwrap().remove("type");
        theirs.as_object_mut().unwrap().remove("track_names");
        assert_eq!(summary(score), theirs, "{}", path.display());
    }
}

#[test]
fn fugue_and_mido_agree_on_the_source_files() {
    let sources = chorales();
    let paths: Vec<&Path> = sources.iter().map(|p| p.as_path()).collect();
    for (path, mut theirs) in sources.iter().zip(mido_summaries(&paths)) {
        let ours = summary(&midi::read(&std::fs::read(path).unwrap()).unwrap());
        theirs.as_object_mut().unwrap().remove("type");
        theirs.as_object_mut().unwrap().remove("track_names");
        assert_eq!(ours, theirs, "{}", path.display());
    }
}

#[test]
fn beats_and_seconds_follow_the_tempo_map() {
    // jsb-mini: 480 ticks per beat at 100 bpm, so one beat lasts 0.6 s.
    let path = shared_data("jsb-mini/train/jsb_train_000.mid");
    let score = midi::read(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(score.ticks_per_beat, 480);
    assert_eq!(score.tempos[0].bpm().round(), 100.0);
    let map = score.tempo_map();
    let last = score.parts[0].notes.last().unwrap();
    let beats = score.beats(last.start);
    assert!((map.seconds(last.start) - beats * 0.6).abs() < 1e-9);
}

#[test]
fn inputs_the_fuzzer_broke_round_trip_now() {
    let files = midi_files(&project_path("tests/fuzz-regressions/midi_read"));
    assert!(files.len() >= 3, "the saved fuzz inputs");
    for path in files {
        let first = midi::read(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(midi::read(&midi::write(&first)).unwrap(), first, "{}", path.display());
    }
}

#[test]
fn parts_sharing_a_channel_keep_their_programs() {
    use fugue::midi::{Note, Part};
    let part = |program: u8, start: u64| {
        Part::new(0, program, vec![Note { pitch: 60, velocity: 90, start, duration: 100 }])
    };
    let score = Score::of_parts(96, vec![part(0, 0), part(40, 200)]);
    let again = midi::read(&midi::write(&score)).unwrap();
    assert_eq!(
        again.parts.iter().map(|p| (p.program, p.notes[0].start)).collect::<Vec<_>>(),
        [(0, 0), (40, 200)]
    );
}

/// Piano (two hands: one program, two parts), bass, drums and strings, on the
/// `events` grid, as a file would hold them.
fn band() -> Score {
    use fugue::midi::{Note, Part, TempoChange, TimeSignature};
    let part = |name: &str, channel: u8, program: u8, notes: &[(u8, u8, u64, u64)]| Part {
        name: Some(name.to_owned()),
        program,
        channel,
        is_drum: channel == 9,
        notes: notes
            .iter()
            .map(|&(pitch, velocity, start, duration)| Note { pitch, velocity, start, duration })
            .collect(),
    };
    let mut score = Score::of_parts(
        480,
        vec![
            part(
                "Piano RH",
                0,
                0,
                &[(72, 90, 0, 480), (76, 90, 480, 240), (79, 90, 720, 240), (72, 90, 1920, 1920)],
            ),
            part("Piano LH", 1, 0, &[(48, 70, 0, 960), (55, 70, 960, 960), (48, 70, 1920, 1920)]),
            part("Bass", 2, 33, &[(36, 98, 0, 480), (36, 98, 960, 480), (43, 98, 1920, 960)]),
            part("Drums", 9, 0, &[(36, 110, 0, 60), (42, 82, 0, 60), (42, 82, 480, 60), (38, 110, 960, 60)]),
            part("Strings", 3, 48, &[(60, 62, 0, 3840), (64, 62, 0, 3840), (67, 62, 1920, 1920)]),
        ],
    );
    score.tempos = vec![TempoChange { tick: 0, micros_per_beat: 500_000 }];
    score.time_signatures = vec![TimeSignature { tick: 0, numerator: 4, denominator: 4 }];
    score
}

#[test]
fn a_band_keeps_its_parts_through_events_and_mido_agrees() {
    use fugue::repr::events::{self, EventsConfig, PART_LIMIT};
    let file = midi::read(&midi::write(&band())).unwrap();
    assert_eq!(file, band(), "the file holds the band as built");
    let config = EventsConfig { max_parts: PART_LIMIT, ..EventsConfig::default() };
    let decoded = events::decode(&events::encode(&file, &config), &config);
    assert_eq!(decoded, file, "every note in its part, every program and channel kept");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("band.mid");
    std::fs::write(&out, midi::write(&decoded)).unwrap();
    assert_eq!(midi::read(&std::fs::read(&out).unwrap()).unwrap(), file);
    let mut theirs = mido_summaries(&[out.as_path()]).remove(0);
    assert_eq!(theirs["track_names"], json!([null, "Piano RH", "Piano LH", "Bass", "Drums", "Strings"]));
    let drum_channels: Vec<&Value> =
        theirs["notes"].as_array().unwrap().iter().filter(|n| n[0] == 9).collect();
    assert_eq!(drum_channels.len(), 4, "the drums, and only they, on channel 10");
    theirs.as_object_mut().unwrap().remove("type");
    theirs.as_object_mut().unwrap().remove("track_names");
    assert_eq!(summary(&file), theirs);
}
