use std::io::Write;

use fugue::midi;
use fugue::repr::events;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::support::{Options, TestApp, TestDatabase, error_body, midi_files, shared_data, spawn_app};

fn file_part(name: &str, bytes: Vec<u8>) -> Part {
    Part::bytes(bytes).file_name(name.to_owned())
}

fn zip_of(paths: &[std::path::PathBuf]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for path in paths {
        let name = path.file_name().unwrap().to_str().unwrap();
        writer.start_file(format!("chorales/{name}"), zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(&std::fs::read(path).unwrap()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

async fn upload(app: &TestApp, name: &str, parts: Vec<Part>) -> reqwest::Response {
    let mut form = Form::new().text("name", name.to_owned());
    for part in parts {
        form = form.part("files", part);
    }
    app.post_form("/v1/datasets", form).await
}

async fn upload_chorales(app: &TestApp) -> Value {
    let files = midi_files(&shared_data("bach-chorales-midi"));
    let response = upload(app, "bach chorales", vec![file_part("chorales.zip", zip_of(&files))]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_410_chorales_upload_as_a_zip_with_correct_totals() {
    let app = spawn_app(Options::default()).await;
    let dataset = upload_chorales(&app).await;
    let report = &dataset["report"];
    assert_eq!(report["accepted"].as_array().unwrap().len(), 410);
    assert_eq!(report["rejected"], serde_json::json!([]));

    // The totals agree with reading every file directly.
    let scores: Vec<midi::Score> = midi_files(&shared_data("bach-chorales-midi"))
        .iter()
        .map(|path| midi::read(&std::fs::read(path).unwrap()).unwrap())
        .collect();
    let notes: usize = scores.iter().map(midi::Score::note_count).sum();
    let parts: usize = scores.iter().map(|s| s.parts.len()).sum();
    let seconds: f64 = scores.iter().map(|s| s.tempo_map().seconds(s.end_tick())).sum();
    let totals = &report["totals"];
    assert_eq!(totals["files"], 410);
    assert_eq!(totals["notes"], notes);
    assert_eq!(totals["parts"], parts);
    assert!((totals["duration_seconds"].as_f64().unwrap() - seconds).abs() < 1e-6);
    let low = scores.iter().filter_map(|s| s.pitch_range()).map(|r| r.0).min().unwrap();
    let high = scores.iter().filter_map(|s| s.pitch_range()).map(|r| r.1).max().unwrap();
    assert_eq!(totals["pitch_range"], serde_json::json!([low, high]));
    let representations = &totals["representations"];
    for key in [
        "note_chord_tokens",
        "note_chord_vocabulary",
        "events_tokens",
        "events_vocabulary",
        "events_with_parts_tokens",
        "events_with_parts_vocabulary",
        "pianoroll_frames",
    ] {
        assert!(representations[key].as_u64().unwrap() > 0, "{key}");
    }
    // The corpus's part table agrees with the files read directly.
    assert_eq!(totals["part_table"], serde_json::to_value(events::corpus_parts(&scores)).unwrap());
    let table = totals["part_table"].as_array().unwrap();
    // The four voices are the most common parts (a few chorales name a soprano
    // otherwise, `Soprano 1` say, so Alto, Tenor and Bass come first).
    let mut names: Vec<&str> = table[..4].iter().map(|part| part["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Alto", "Bass", "Soprano", "Tenor"], "{table:?}");
    assert!(table[3]["files"].as_u64().unwrap() >= 365, "{}", table[3]);
    assert!(
        representations["events_with_parts_vocabulary"].as_u64()
            > representations["events_vocabulary"].as_u64()
    );
    assert_eq!(dataset["file_count"], 410);
    assert_eq!(dataset["note_count"], notes);
    assert_eq!(app.blob_files().len(), 410);

    // Each file lists its parts: a four-part chorale its four named voices, in order.
    let bwv = report["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "chorales.zip/chorales/bwv10.7.mid");
    let listed = bwv.expect("bwv10.7 is in the report")["part_list"].as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|part| part["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Soprano", "Alto", "Tenor", "Bass"], "{listed:?}");
    let path = shared_data("bach-chorales-midi/bwv10.7.mid");
    let score = midi::read(&std::fs::read(path).unwrap()).unwrap();
    for (part, summary) in score.parts.iter().zip(listed) {
        let low = part.notes.iter().map(|n| n.pitch).min().unwrap();
        let high = part.notes.iter().map(|n| n.pitch).max().unwrap();
        assert_eq!(summary["pitch_range"], serde_json::json!([low, high]), "{summary}");
        assert_eq!(summary["notes"], part.notes.len(), "{summary}");
        assert_eq!(summary["program"], part.program, "{summary}");
    }
    let soprano = &listed[0];
    assert!(soprano["pitch_range"][0].as_u64().unwrap() > listed[3]["pitch_range"][0].as_u64().unwrap());
}

#[tokio::test]
async fn garbage_is_rejected_per_file_with_reasons() {
    let app = spawn_app(Options::default()).await;
    let good = std::fs::read(shared_data("jsb-mini/train/jsb_train_000.mid")).unwrap();
    let mut format2 = good.clone();
    format2[9] = 2;
    let parts = vec![
        file_part("good.mid", good.clone()),
        file_part("random.mid", (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        file_part("empty.mid", Vec::new()),
        file_part("cut.mid", good[..100].to_vec()),
        file_part("sequential.mid", format2),
    ];
    let response = upload(&app, "mixed", parts).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let dataset: Value = response.json().await.unwrap();
    assert_eq!(dataset["file_count"], 1);
    let rejected: Vec<(String, String)> = dataset["report"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["file"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect();
    let reason = |file: &str| rejected.iter().find(|r| r.0 == file).map(|r| r.1.clone()).unwrap();
    assert_eq!(reason("random.mid"), "not a MIDI file (no MThd header)");
    assert_eq!(reason("empty.mid"), "not a MIDI file (no MThd header)");
    assert_eq!(reason("cut.mid"), "truncated: the file ends inside a track");
    assert_eq!(reason("sequential.mid"), "unsupported MIDI format 2 (sequential tracks)");
}

#[tokio::test]
async fn nothing_usable_creates_nothing_and_answers_422_with_the_report() {
    let app = spawn_app(Options::default()).await;
    let response = upload(&app, "junk", vec![file_part("a.txt", b"not music".to_vec())]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = error_body(response).await;
    assert_eq!(body["error"]["code"], "nothing_accepted");
    assert_eq!(body["error"]["details"]["report"]["rejected"][0]["file"], "a.txt");
    let list: Value = app.get("/v1/datasets").await.json().await.unwrap();
    assert_eq!(list, serde_json::json!([]));
    assert!(app.blob_files().is_empty());
}

#[tokio::test]
async fn form_errors_name_the_field() {
    let app = spawn_app(Options::default()).await;
    let good = std::fs::read(shared_data("jsb-mini/train/jsb_train_000.mid")).unwrap();
    let cases = [
        (Form::new().part("files", file_part("a.mid", good.clone())), "name"),
        (Form::new().text("name", "  "), "name"),
        (Form::new().text("name", "x".repeat(201)), "name"),
        (Form::new().text("name", "ok"), "files"),
        (Form::new().text("name", "ok").text("colour", "red"), "colour"),
        (Form::new().text("name", "ok").text("include_drums", "maybe"), "include_drums"),
    ];
    for (form, field) in cases {
        let response = app.post_form("/v1/datasets", form).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(error_body(response).await["error"]["details"]["field"], field);
    }
    let not_a_form =
        app.client.post(app.url("/v1/datasets")).json(&serde_json::json!({"name": "x"})).send().await;
    let not_a_form = not_a_form.unwrap();
    assert!(not_a_form.status().is_client_error(), "{}", not_a_form.status());
    error_body(not_a_form).await;
}

#[tokio::test]
async fn list_get_and_delete_share_blobs_between_datasets() {
    let app = spawn_app(Options::default()).await;
    let files = midi_files(&shared_data("jsb-mini/train"));
    let first: Value =
        upload(&app, "first", vec![file_part("a.zip", zip_of(&files))]).await.json().await.unwrap();
    let second: Value =
        upload(&app, "second", vec![file_part("b.zip", zip_of(&files[..2]))]).await.json().await.unwrap();
    assert_eq!(app.blob_files().len(), files.len(), "identical files are stored once");

    let list: Value = app.get("/v1/datasets").await.json().await.unwrap();
    assert!(list.is_array(), "{list}");
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["second", "first"]);
    assert!(list[0].get("report").is_none(), "lists leave reports out");
    let one: Value =
        app.get(&format!("/v1/datasets/{}", first["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(one["report"]["totals"]["files"], files.len());

    let delete = |id: &str| app.client.delete(app.url(&format!("/v1/datasets/{id}"))).send();
    assert_eq!(delete(first["id"].as_str().unwrap()).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(app.blob_files().len(), 2, "blobs the second dataset uses stay");
    assert_eq!(delete(second["id"].as_str().unwrap()).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(app.blob_files().is_empty());
    let gone = delete(second["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/datasets/nope").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn datasets_work_the_same_on_postgres() {
    let database = TestDatabase::postgres().await;
    let app = spawn_app(Options { database, ..Options::default() }).await;
    let dataset = upload_chorales(&app).await;
    let id = dataset["id"].as_str().unwrap();
    let fetched: Value = app.get(&format!("/v1/datasets/{id}")).await.json().await.unwrap();
    assert_eq!(fetched["report"], dataset["report"]);
    assert_eq!(fetched["created_at"], dataset["created_at"]);
}

/// The fuzzer's seeds of hostile shapes (`fuzz/seeds/ingest`, made by
/// `bench/adversarial_ingest.py`) and whatever it found (`tests/fuzz-regressions/ingest`)
/// go through ingest and every representation of what it accepts, as the fuzz target does.
#[test]
fn hostile_and_fuzzed_inputs_are_refused_for_their_length_or_expand_within_bounds() {
    use fugue::datasets::{IngestLimits, Upload, ingest};
    use fugue::repr::{events, melody_chords, note_chord, pianoroll};

    let files_in = |dir: &str| -> Vec<std::path::PathBuf> {
        let dir = crate::support::project_path(dir);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        entries.map(|entry| entry.unwrap().path()).collect()
    };
    let seeds = files_in("fuzz/seeds/ingest");
    assert!(seeds.len() >= 6, "the hostile seeds");
    let inputs = [seeds, files_in("tests/fuzz-regressions/ingest")].concat();
    let mut reasons = Vec::new();
    for path in &inputs {
        let upload = Upload { file_name: path.display().to_string(), bytes: std::fs::read(path).unwrap() };
        let Ok(ingested) = ingest(vec![upload], true, &IngestLimits::default()) else { continue };
        reasons.extend(ingested.report.rejected.iter().map(|rejection| rejection.reason.clone()));
        for (_, bytes) in &ingested.files {
            let score = midi::read_usable(bytes, true).unwrap();
            assert!(pianoroll::encode(&score, pianoroll::Grid::Sixteenth).len() <= 160_000);
            assert!(note_chord::encode(&score, &note_chord::NoteChordConfig::default()).len() <= 80_001);
            let config = events::EventsConfig { with_program: true, ..events::EventsConfig::default() };
            let tokens = events::encode(&score, &config);
            assert!(tokens.len() <= 3_100_000, "{}", path.display());
            midi::write(&events::decode(&tokens, &config));
            let with_parts = events::EventsConfig { max_parts: events::PART_LIMIT, ..config };
            let tokens = events::encode(&score, &with_parts);
            assert!(tokens.len() <= 3_300_000, "{} with parts", path.display());
            midi::write(&events::decode(&tokens, &with_parts));
            melody_chords::encode(&score, &melody_chords::MelodyChordsConfig::default());
        }
    }
    let too_long = reasons.iter().filter(|reason| reason.contains("beats: more than the 40000 allowed"));
    assert!(too_long.count() >= 5, "each seed that lasts days is refused for it: {reasons:?}");
    assert!(
        reasons.iter().any(|reason| reason.contains("seconds: more than the 21600 allowed")),
        "{reasons:?}"
    );
}
