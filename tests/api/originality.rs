//! Originality through the API: every composition's longest copied run and
//! statistics, the bundled model's stored index, and `max_copied_notes`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Options, TestApp, error_body, midi_files, project_path, shared_data, spawn_app};

async fn generate(app: &TestApp, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/v1/generate")).json(body).send().await.unwrap()
}

async fn composed(app: &TestApp, body: &Value) -> Value {
    let response = generate(app, body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    response.json().await.unwrap()
}

/// A piece as the index reads it, computed here apart from it: (grid onset, pitch)
/// sorted, unisons merged.
fn sequence(notes: impl Iterator<Item = (f64, u8)>) -> Vec<(i64, i64)> {
    let mut sequence: Vec<(i64, i64)> =
        notes.map(|(beat, pitch)| ((beat * 24.0).round() as i64, i64::from(pitch))).collect();
    sequence.sort_unstable();
    sequence.dedup();
    sequence
}

/// The key of a run under each kind: exact (pitches and gaps), transposed
/// (intervals and gaps), onset order (pitches).
fn run_keys(run: &[(i64, i64)]) -> [Vec<i64>; 3] {
    let gaps = run.windows(2).map(|pair| (pair[1].0 - pair[0].0).min(16 * 24 + 1));
    let intervals = run.windows(2).map(|pair| pair[1].1 - pair[0].1);
    let pitches: Vec<i64> = run.iter().map(|&(_, pitch)| pitch).collect();
    [pitches.iter().copied().chain(gaps.clone()).collect(), intervals.chain(gaps).collect(), pitches]
}

/// Every run of `length` notes of the training pieces, per kind.
fn training_runs(pieces: &[Vec<(i64, i64)>], length: usize) -> [HashSet<Vec<i64>>; 3] {
    let mut runs: [HashSet<Vec<i64>>; 3] = Default::default();
    for run in pieces.iter().flat_map(|piece| piece.windows(length)) {
        for (kind, key) in run_keys(run).into_iter().enumerate() {
            runs[kind].insert(key);
        }
    }
    runs
}

/// The bundled default's training pieces, read from the chorale files its stored
/// index names (the training split, 348 of the 410).
fn default_training_pieces() -> Vec<Vec<(i64, i64)>> {
    let stored: Value = serde_json::from_slice(
        &std::fs::read(project_path("models/default/originality.json")).expect("the default ships an index"),
    )
    .unwrap();
    let names: HashSet<&str> =
        stored["pieces"].as_array().unwrap().iter().map(|piece| piece["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 348);
    let files: HashMap<String, std::path::PathBuf> = midi_files(&shared_data("bach-chorales-midi"))
        .into_iter()
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), path))
        .collect();
    names
        .iter()
        .map(|name| {
            let score = fugue::midi::read(&std::fs::read(&files[*name]).unwrap()).unwrap();
            sequence(fugue::analysis::notes_of(&score).iter().map(|note| (note.start_beat, note.pitch)))
        })
        .collect()
}

fn piece_sequence(piece: &Value) -> Vec<(i64, i64)> {
    sequence(
        piece["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|note| (note["start_beat"].as_f64().unwrap(), note["pitch"].as_u64().unwrap() as u8)),
    )
}

/// The longest copied run of each kind (exact, transposed, onset order) the
/// composition's stats report.
fn reported(piece: &Value) -> [u64; 3] {
    let originality = &piece["stats"]["originality"];
    ["exact", "transposed", "onset_order"].map(|kind| originality[kind]["notes"].as_u64().unwrap_or(0))
}

#[tokio::test]
async fn the_bundled_index_finds_its_training_pieces_whole_and_not_its_held_out_ones() {
    // A composition that is a training piece played back, built by hand: each
    // chorale as generated notes, looked up as a composition is.
    let dir = project_path("models/default");
    let index = fugue::model::artifact::read_originality(&dir).unwrap().expect("the default ships an index");
    let meta = fugue::model::artifact::read_meta(&dir).unwrap();
    assert_eq!(meta.originality_index.as_ref().map(|summary| summary.pieces), Some(348));
    assert_eq!(meta.held_out_statistics.as_ref().map(|statistics| statistics.pieces), Some(62));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.join("originality.json")).unwrap()).unwrap();
    let training: HashSet<&str> =
        stored["pieces"].as_array().unwrap().iter().map(|piece| piece["name"].as_str().unwrap()).collect();
    let (mut whole, mut from_itself, mut others) = (0, 0, Vec::new());
    for path in midi_files(&shared_data("bach-chorales-midi")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let score = fugue::midi::read(&std::fs::read(&path).unwrap()).unwrap();
        let notes = fugue::generate::notes_of(&score);
        let report = index.lookup(&fugue::generate::compose::analysis_notes(&notes), &[]);
        let distinct = sequence(notes.iter().map(|note| (note.start_beat, note.pitch))).len() as u32;
        let run = report.exact.unwrap();
        if training.contains(name.as_str()) {
            // Found whole, from its first note; in itself, unless the corpus holds
            // the same chorale twice and names the first.
            assert_eq!((run.notes, run.transposition), (distinct, 0), "{name}");
            assert_eq!(report.onset_order.unwrap().notes, distinct, "{name}");
            whole += 1;
            from_itself += usize::from(run.piece == name);
        } else {
            others.push(run.notes * 100 / distinct);
        }
    }
    assert_eq!(whole, 348);
    assert!(from_itself >= 340, "{from_itself}");
    others.sort_unstable();
    assert!(others[others.len() / 2] < 25, "held-out chorales copy under a quarter: {others:?}");
}

#[tokio::test]
async fn every_composition_reports_its_longest_copied_run_and_its_statistics() {
    let app = spawn_app(Options { bundled_models: true, ..Options::default() }).await;
    let piece = composed(&app, &json!({"length": {"notes": 96}, "seed": 5})).await;
    let stats = &piece["stats"];
    for kind in ["exact", "transposed", "onset_order"] {
        let run = &stats["originality"][kind];
        assert!(run["notes"].as_u64().unwrap() >= 2, "{kind}: {stats}");
        assert!(run["piece"].as_str().unwrap().ends_with(".mid"), "{kind}: {run}");
        assert!(run["bar"].as_u64().unwrap() >= 1, "{kind}: {run}");
    }
    let reported = reported(&piece);
    assert!(reported[0] <= reported[1], "an exact copy is a transposed one: {reported:?}");
    let statistics = &stats["statistics"];
    assert_eq!(statistics["notes"], 96);
    assert_eq!(statistics["pitch_classes"].as_array().unwrap().len(), 12);
    let total: f64 =
        statistics["pitch_classes"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "{statistics}");
    assert!(statistics["scale_consistency"].as_f64().unwrap() > 0.5, "{statistics}");
    let stored: Value = app
        .get(&format!("/v1/compositions/{}", piece["composition_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stored["stats"], piece["stats"]);

    // A model without an index (trained on a benchmark JSON): no originality figure.
    let roll = composed(&app, &json!({"model": "jsb-pianoroll", "length": {"notes": 32}, "seed": 2})).await;
    assert!(roll["stats"]["originality"].is_null(), "{}", roll["stats"]);
    assert!(roll["stats"]["statistics"].is_object(), "{}", roll["stats"]);

    let model: Value = app.get("/v1/models/default").await.json().await.unwrap();
    assert_eq!(model["originality_index"]["pieces"], 348, "{model}");
    assert_eq!(model["held_out_statistics"]["pieces"], 62);
}

#[tokio::test]
async fn with_max_copied_notes_no_run_copies_more_over_many_seeds() {
    const LIMIT: usize = 4;
    let app = spawn_app(Options { bundled_models: true, ..Options::default() }).await;
    let training = default_training_pieces();
    let longer = training_runs(&training, LIMIT + 1);
    let seeds: Vec<u64> = (0..10).collect();
    let request = |seed: u64, limit: Option<usize>| {
        let mut body = json!({"length": {"notes": 100}, "seed": seed, "temperature": 0.8});
        if let Some(limit) = limit {
            body["max_copied_notes"] = json!(limit);
        }
        body
    };
    let guarded_requests: Vec<Value> = seeds.iter().map(|&seed| request(seed, Some(LIMIT))).collect();
    let free_requests: Vec<Value> = seeds.iter().map(|&seed| request(seed, None)).collect();
    let guarded = join_all(guarded_requests.iter().map(|body| composed(&app, body))).await;
    let free = join_all(free_requests.iter().map(|body| composed(&app, body))).await;
    let copies = |piece: &Value| -> [bool; 3] {
        let sequence = piece_sequence(piece);
        let found =
            |kind: usize| sequence.windows(LIMIT + 1).any(|run| longer[kind].contains(&run_keys(run)[kind]));
        [found(0), found(1), found(2)]
    };
    for (seed, piece) in seeds.iter().zip(&guarded) {
        assert_eq!(piece["stats"]["max_copied_notes"], LIMIT);
        assert!(
            piece["notes"].as_array().unwrap().len() >= 90,
            "seed {seed}: the limit leaves music to write"
        );
        assert_eq!(copies(piece), [false; 3], "seed {seed}: a run of {} notes copied", LIMIT + 1);
        assert!(
            reported(piece).iter().all(|&notes| notes as usize <= LIMIT),
            "seed {seed}: {:?}",
            reported(piece)
        );
    }
    // Without the limit the same seeds copy longer runs, as the scan sees them too.
    let copying: Vec<&Value> = free.iter().filter(|piece| copies(piece).contains(&true)).collect();
    assert!(copying.len() >= 5, "unguarded pieces copy more than {LIMIT} notes");
    for piece in copying {
        assert!(reported(piece).iter().any(|&notes| notes as usize > LIMIT), "{:?}", reported(piece));
    }

    // Over the WebSocket, with other controls, the same holds; the end frame says so.
    let url = format!("ws://{}/v1/generate/stream", app.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    let body =
        json!({"length": {"bars": 8}, "seed": 21, "max_copied_notes": LIMIT, "key": "G", "tempo_bpm": 90});
    socket.send(tokio_tungstenite::tungstenite::Message::Text(body.to_string().into())).await.unwrap();
    let mut end = None;
    while let Some(message) = socket.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message.unwrap() {
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["type"] == "end" {
                end = Some(event);
            }
        }
    }
    let piece = &end.expect("an end frame")["composition"];
    assert_eq!(copies(piece), [false; 3]);
    assert!(piece["stats"]["originality"]["transposed"]["notes"].as_u64().unwrap() as usize <= LIMIT);
}

#[tokio::test]
async fn a_copy_limit_out_of_range_or_without_an_index_is_refused_naming_the_field() {
    let app = spawn_app(Options { bundled_models: true, ..Options::default() }).await;
    for body in [
        json!({"max_copied_notes": 2}),
        json!({"max_copied_notes": 2001}),
        json!({"max_copied_notes": -1}),
        // A piano-roll model cannot mask copies, and has no index.
        json!({"model": "jsb-pianoroll", "max_copied_notes": 8}),
    ] {
        let response = generate(&app, &body).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = error_body(response).await;
        assert_eq!(error["error"]["details"]["field"], "max_copied_notes", "{body}: {error}");
    }
    // The bundled default without its index: an events model that could mask, but
    // has nothing to look copies up in.
    let app = spawn_app(Options::default()).await;
    let models = app.data_dir.parent().unwrap().join("models");
    copy_model(&project_path("models/default"), &models.join("noindex"));
    std::fs::remove_file(models.join("noindex/originality.json")).unwrap();
    let response =
        generate(&app, &json!({"model": "noindex", "length": {"notes": 8}, "max_copied_notes": 6})).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error = error_body(response).await;
    assert_eq!(error["error"]["details"]["field"], "max_copied_notes", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("no originality index"), "{error}");
    let piece = composed(&app, &json!({"model": "noindex", "length": {"notes": 8}})).await;
    assert!(piece["stats"]["originality"].is_null());
}

fn copy_model(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
