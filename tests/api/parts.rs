//! Generation with parts: a model trained on four-voice chorales writes each voice
//! in its own part, within the range, polyphony and instrument asked of it.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::jobs::{finished, tiny_job, upload_mini};
use crate::support::{Options, TestApp, error_body, midi_files, shared_data, spawn_app};

/// A `fugue` model trained (briefly) on eight chorales: one with parts.
async fn chorale_model(app: &TestApp) -> String {
    let mut form = Form::new().text("name", "eight chorales");
    for path in midi_files(&shared_data("bach-chorales-midi")).into_iter().take(8) {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        form = form.part("files", Part::bytes(std::fs::read(&path).unwrap()).file_name(name));
    }
    let dataset: Value = app.post_form("/v1/datasets", form).await.json().await.unwrap();
    trained(app, dataset["id"].as_str().unwrap()).await
}

/// The id of a small `fugue` model trained on the dataset through a job.
async fn trained(app: &TestApp, dataset_id: &str) -> String {
    let mut job = tiny_job(dataset_id, 2);
    job["hyperparameters"]["hidden_size"] = json!(32);
    let submitted: Value =
        app.client.post(app.url("/v1/training-jobs")).json(&job).send().await.unwrap().json().await.unwrap();
    let done = finished(app, submitted["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    done["model_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn four_parts_keep_their_ranges_polyphony_and_instruments_over_many_seeds() {
    let app = spawn_app(Options { train_workers: 1, ..Options::default() }).await;
    let model = chorale_model(&app).await;
    let detail: Value = app.get(&format!("/v1/models/{model}")).await.json().await.unwrap();
    let known: Vec<&str> =
        detail["parts"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    for voice in ["Soprano", "Alto", "Tenor", "Bass"] {
        assert!(known.contains(&voice), "the model detail lists {voice}: {known:?}");
    }
    // (name as asked, as the model knows it, program, range)
    let voices = [
        ("soprano", "Soprano", 52, [60, 81]),
        ("alto", "Alto", 53, [53, 74]),
        ("tenor", "Tenor", 57, [48, 69]),
        ("bass", "Bass", 42, [36, 62]),
    ];
    let parts: Vec<Value> = voices
        .iter()
        .map(|(name, _, program, range)| {
            json!({"name": name, "program": program, "pitch_range": range, "max_polyphony": 1})
        })
        .collect();
    let mut used = BTreeMap::new();
    let mut last = Value::Null;
    for seed in 0..12 {
        let body = json!({"model": model, "seed": seed, "length": {"notes": 48}, "parts": parts});
        let response = app.client.post(app.url("/v1/generate")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "seed {seed}");
        last = response.json().await.unwrap();
        let notes = last["notes"].as_array().unwrap();
        assert!(!notes.is_empty(), "seed {seed}");
        let mut ends: BTreeMap<u64, f64> = BTreeMap::new();
        for note in notes {
            let index = note["part"]["index"].as_u64().expect("every note has a part");
            let (_, known, program, [low, high]) = voices[index as usize];
            assert_eq!(note["part"]["name"], known, "seed {seed}: {note}");
            assert_eq!(note["program"], program, "seed {seed}: {note}");
            let pitch = note["pitch"].as_u64().unwrap();
            assert!((low..=high).contains(&pitch), "seed {seed}: {known} sings {pitch}: {note}");
            let start = note["start_beat"].as_f64().unwrap();
            let previous_end = ends.insert(index, start + note["duration_beats"].as_f64().unwrap());
            assert!(
                previous_end.is_none_or(|end| end <= start + 1e-9),
                "seed {seed}: two {known} notes at once"
            );
            *used.entry(index).or_insert(0) += 1;
        }
    }
    assert!(used.len() >= 2, "the model writes in several parts: {used:?}");

    // The MIDI file: a named track per part, each on its own channel with its program.
    let midi = app.get(last["midi_url"].as_str().unwrap()).await.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.mid");
    std::fs::write(&path, &midi).unwrap();
    let summary = crate::midi::mido_summaries(&[path.as_path()]).remove(0);
    let written: Vec<&str> =
        summary["track_names"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    let in_piece: Vec<&str> = voices
        .iter()
        .enumerate()
        .filter(|(index, _)| last["notes"].as_array().unwrap().iter().any(|n| n["part"]["index"] == *index))
        .map(|(_, voice)| voice.1)
        .collect();
    assert_eq!(written, in_piece);
    let mut channel_programs: BTreeMap<u64, u64> = BTreeMap::new();
    for note in summary["notes"].as_array().unwrap() {
        channel_programs.insert(note[0].as_u64().unwrap(), note[1].as_u64().unwrap());
    }
    assert_eq!(channel_programs.len(), in_piece.len(), "a channel per part: {channel_programs:?}");

    let unknown = json!({"model": model, "parts": [{"name": "soprano"}, {"name": "oboe"}]});
    let response = app.client.post(app.url("/v1/generate")).json(&unknown).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(response).await["error"]["details"]["field"], "parts[1].name");
}

#[tokio::test]
async fn a_model_trained_without_parts_refuses_parts_and_a_given_part_naming_the_field() {
    let app = spawn_app(Options { train_workers: 1, ..Options::default() }).await;
    // jsb-mini's files have one track each: the fugue preset learns no parts.
    let dataset = upload_mini(&app).await;
    let model = trained(&app, &dataset).await;
    let detail: Value = app.get(&format!("/v1/models/{model}")).await.json().await.unwrap();
    assert_eq!(detail["parts"], json!([]), "no part table");
    let body = json!({"model": model, "length": {"notes": 8}, "parts": [{"name": "soprano"}]});
    let response = app.client.post(app.url("/v1/generate")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(response).await["error"]["details"]["field"], "parts");
    let melody = json!([{"pitch": 67, "start_beat": 0, "duration_beats": 1}]);
    let given = json!({"model": model, "given": {"part": 0, "notes": melody}});
    let response = app.client.post(app.url("/v1/generate")).json(&given).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_body(response).await["error"]["details"]["field"], "given");
    let plain = json!({"model": model, "length": {"notes": 8}});
    let response = app.client.post(app.url("/v1/generate")).json(&plain).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "the same model composes without parts");
}
