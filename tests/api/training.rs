//! `fugue train`, `generate` and `eval` as a user runs them, on tiny models.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{project_path, shared_data};

const FUGUE: &str = env!("CARGO_BIN_EXE_fugue");

/// A tiny, quick configuration of a preset on the jsb-mini MIDI files.
pub fn train_command(preset: &str, out: &Path, epochs: u32) -> Command {
    let mut command = Command::new(FUGUE);
    command
        .args(["train", "--preset", preset, "--out"])
        .arg(out)
        .arg("--data")
        .arg(shared_data("jsb-mini/train"));
    command.args([
        "--epochs",
        &epochs.to_string(),
        "--hidden-size",
        "16",
        "--layers",
        "1",
        "--batch-size",
        "4",
    ]);
    command.args(["--nade-hidden-size", "8", "--embedding-size", "8", "--window", "8", "--seed", "5"]);
    command
}

fn run(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

pub fn meta(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap()
}

#[test]
fn every_preset_trains_and_generates_music() {
    for preset in [
        "fugue",
        "play-bach",
        "classical-piano",
        "folk-rnn",
        "pianoroll-lstm",
        "pianoroll-nade",
        "pianoroll-seq2seq",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        let mut command = train_command(preset, &model, 2);
        command.args(["--recurrent-dropout", "0.25"]);
        run(command);
        let meta = meta(&model);
        assert_eq!(meta["preset"], preset);
        if preset == "fugue" {
            let representation = &meta["representation"];
            assert_eq!(representation["config"]["max_parts"], 0, "one-track files: no parts");
            assert!(representation.get("parts").is_none(), "{representation}");
        }
        assert_eq!(meta["network"]["recurrent_dropout"], 0.25, "{preset}: every LSTM takes it");
        // Trained on MIDI files: the training split's originality index and the
        // held-out files' statistics, which `fugue index` makes again exactly.
        let files = crate::support::midi_files(&shared_data("jsb-mini/train")).len() as u64;
        let (indexed, held_out) =
            (meta["originality_index"]["pieces"].as_u64(), meta["held_out_statistics"]["pieces"].as_u64());
        assert!(indexed.is_some_and(|pieces| pieces >= 1), "{preset}: {indexed:?}");
        assert!(indexed.unwrap() + held_out.unwrap() <= files, "{preset}: {indexed:?} {held_out:?}");
        let stored = std::fs::read(model.join("originality.json")).unwrap();
        std::fs::remove_file(model.join("originality.json")).unwrap();
        let mut index = Command::new(FUGUE);
        index.args(["index", "--model"]).arg(&model);
        run(index);
        assert_eq!(
            std::fs::read(model.join("originality.json")).unwrap(),
            stored,
            "{preset}: the same split"
        );
        assert_eq!(meta["training"]["history"].as_array().unwrap().len(), 2);
        assert!(!dir.path().join("model.checkpoint").exists(), "checkpoints are removed after success");
        let epoch = &meta["training"]["history"][0];
        assert_eq!(
            epoch["valid_accuracy"].is_number(),
            !preset.starts_with("pianoroll"),
            "{preset}: {epoch}"
        );
        if preset == "pianoroll-seq2seq" {
            for metric in ["valid_precision", "valid_recall", "valid_density", "valid_true_density"] {
                assert!(epoch[metric].is_number(), "{metric}: {epoch}");
            }
        }

        let song = dir.path().join("song.mid");
        let mut generate = Command::new(FUGUE);
        generate.args(["generate", "--model"]).arg(&model).arg("--out").arg(&song).args(["--length", "64"]);
        run(generate);
        let again = dir.path().join("again.mid");
        let mut repeat = Command::new(FUGUE);
        repeat.args(["generate", "--model"]).arg(&model).arg("--out").arg(&again).args(["--length", "64"]);
        run(repeat);
        assert_eq!(
            std::fs::read(&song).unwrap(),
            std::fs::read(&again).unwrap(),
            "{preset}: one seed, one song"
        );
        let score =
            fugue::midi::read(&std::fs::read(&song).unwrap()).expect("fugue's reader accepts the song");
        assert!(score.note_count() > 0, "{preset} generated no notes");
        assert!(!score.tempos.is_empty(), "{preset}: the song has a tempo");
    }
}

#[test]
fn fugue_learns_the_parts_of_a_corpus_that_has_them_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chorales");
    std::fs::create_dir(&data).unwrap();
    for name in ["bwv1.6.mid", "bwv10.7.mid", "bwv101.7.mid", "bwv102.7.mid", "bwv103.6.mid"] {
        std::fs::copy(shared_data(&format!("bach-chorales-midi/{name}")), data.join(name)).unwrap();
    }
    let model = dir.path().join("model");
    let mut command = Command::new(FUGUE);
    command.args(["train", "--preset", "fugue", "--out"]).arg(&model).arg("--data").arg(&data);
    command.args(["--epochs", "1", "--hidden-size", "8", "--layers", "1", "--embedding-size", "4"]);
    command.args(["--window", "16", "--batch-size", "4"]);
    run(command);
    let representation = &meta(&model)["representation"];
    assert_eq!(representation["config"]["max_parts"], 16, "{}", representation["config"]);
    let vocabulary: Vec<&str> =
        representation["vocabulary"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for token in ["Part_0", "Part_3", "Name_Soprano", "Name_Bass"] {
        assert!(vocabulary.contains(&token), "{token} in {vocabulary:?}");
    }
    let parts = representation["parts"].as_array().unwrap();
    let voices: Vec<(&str, u64)> = parts[..4]
        .iter()
        .map(|part| (part["name"].as_str().unwrap(), part["files"].as_u64().unwrap()))
        .collect();
    assert_eq!(voices, [("Soprano", 5), ("Alto", 5), ("Tenor", 5), ("Bass", 5)], "{parts:?}");
    assert!(parts.iter().all(|part| part["program"].is_u64() && part["drums"] == false), "{parts:?}");

    // `fugue generate` reads the header of the corpus's typical parts first, so
    // whatever notes one epoch plays land in named voices.
    let song = dir.path().join("song.mid");
    let mut generate = Command::new(FUGUE);
    generate.args(["generate", "--model"]).arg(&model).arg("--out").arg(&song).args(["--length", "256"]);
    run(generate);
    let score = fugue::midi::read(&std::fs::read(&song).unwrap()).expect("fugue's reader accepts the song");
    let names: Vec<Option<&str>> =
        score.parts.iter().filter(|part| !part.notes.is_empty()).map(|part| part.name.as_deref()).collect();
    assert!(!names.is_empty(), "the song has notes");
    assert!(
        names
            .iter()
            .all(|name| name.is_some_and(|name| ["Soprano", "Alto", "Tenor", "Bass"].contains(&name))),
        "every part is a named voice: {names:?}"
    );
}

#[test]
fn piano_roll_models_score_the_benchmark() {
    for preset in ["pianoroll-lstm", "pianoroll-nade"] {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        run(train_command(preset, &model, 1));
        let report = benchmark_score(&model);
        let nll = report["nll"].as_f64().unwrap();
        assert!(nll.is_finite() && nll > 0.0, "{report}");
        assert_eq!(report["frames"], 4725 - 77, "every test frame but each sequence's first");
        assert_eq!(report["split"], "test");
    }
}

/// The figures models/README.md gives for the bundled benchmark models, and the
/// targets they were trained to meet.
#[test]
fn the_bundled_benchmark_models_score_what_the_readme_says() {
    for (model, documented, target) in [("jsb-pianoroll", 7.93, 8.3), ("jsb-pianoroll-ar", 4.96, 6.0)] {
        let report = benchmark_score(&project_path("models").join(model));
        let nll = report["nll"].as_f64().unwrap();
        assert!((nll - documented).abs() < 0.005, "{model}: {report}");
        assert!(nll <= target, "{model}: {report}");
    }
}

/// `fugue eval` on the JSB test split: its one JSON line.
fn benchmark_score(model: &Path) -> Value {
    let mut eval = Command::new(FUGUE);
    eval.args(["eval", "--model"])
        .arg(model)
        .arg("--data")
        .arg(shared_data("jsb-chorales/jsb-chorales-quarter.json"));
    serde_json::from_str(run(eval).trim()).unwrap()
}

/// Losses per epoch, the part of the history that must not depend on timing.
fn losses(meta: &Value) -> Vec<(f64, f64)> {
    let history = meta["training"]["history"].as_array().unwrap();
    history.iter().map(|e| (e["train_loss"].as_f64().unwrap(), e["valid_loss"].as_f64().unwrap())).collect()
}

#[test]
fn a_killed_run_resumes_and_ends_exactly_like_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    // With weight averaging on, so its moving average has to survive the kill too.
    let averaged = |out: &Path| {
        let mut command = train_command("pianoroll-lstm", out, 4);
        command.args(["--weight-averaging", "0.9"]);
        command
    };
    let whole = dir.path().join("whole");
    run(averaged(&whole));

    let resumed = dir.path().join("resumed");
    let mut first = averaged(&resumed);
    let mut child = first.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().starts_with("epoch   2/4") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!resumed.join("meta.json").exists(), "killed before the model was written");
    let checkpoint = dir.path().join("resumed.checkpoint").join("checkpoint.json");
    assert!(checkpoint.exists(), "an epoch's checkpoint survives the kill");

    run(averaged(&resumed));
    assert_eq!(losses(&meta(&resumed)), losses(&meta(&whole)));
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(weights(&resumed), weights(&whole), "the same weights, bit for bit");
}

/// The recipe measures a run's pace with a short run of its own, then scales the
/// regularisation to the music the budget holds: three epochs of jsb-mini are
/// little, so it regularises less. Measuring leaves the run exactly as it would
/// have been with those values asked for.
#[test]
fn a_run_measures_its_pace_first_without_changing_how_it_trains() {
    let dir = tempfile::tempdir().unwrap();
    let planned = dir.path().join("planned");
    run(train_command("pianoroll-lstm", &planned, 3));
    let hyperparameters = &meta(&planned)["hyperparameters"];
    let reason = hyperparameters["recipe"]["recurrent_dropout"].as_str().unwrap();
    assert!(reason.contains("× 0.40 for the budget: 60 minutes hold 3 epochs"), "{reason}");
    let value = |name: &str| hyperparameters[name].as_f64().unwrap();
    // jsb-mini is small: the corpus asks 0.8 × 1.2, at most 0.9; three epochs, × 0.4.
    assert_eq!((value("dropout"), value("recurrent_dropout")), (0.17, 0.36));

    let asked = dir.path().join("asked");
    let mut command = train_command("pianoroll-lstm", &asked, 3);
    command.args(["--dropout", "0.17", "--recurrent-dropout", "0.36"]);
    run(command);
    assert!(meta(&asked)["hyperparameters"]["recipe"]["dropout"] == "set by the request");
    assert_eq!(losses(&meta(&asked)), losses(&meta(&planned)));
}

#[test]
fn bad_arguments_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let mut missing = Command::new(FUGUE);
    missing.args(["generate", "--model"]).arg(dir.path()).arg("--out").arg(dir.path().join("x.mid"));
    let output = missing.output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("meta.json"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (flag, value, message) in [
        ("--length", "10001", "--length must be 1 to 10000"),
        ("--length", "0", "--length must be 1 to 10000"),
        ("--temperature", "0", "--temperature must be above 0 and at most 10"),
        ("--temperature", "11", "--temperature must be above 0 and at most 10"),
        ("--tempo-bpm", "19", "--tempo-bpm must be 20 to 400"),
    ] {
        let mut refused = Command::new(FUGUE);
        refused.args(["generate", "--model"]).arg(dir.path()).arg("--out").arg("x.mid").args([flag, value]);
        let output = refused.output().unwrap();
        assert!(!output.status.success(), "{flag} {value}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(message), "{flag} {value}");
    }
}

#[tokio::test]
async fn an_uploaded_dataset_trains_by_its_id() {
    let app = crate::support::spawn_app(crate::support::Options::default()).await;
    let mut form = reqwest::multipart::Form::new().text("name", "mini");
    for path in crate::support::midi_files(&shared_data("jsb-mini/train")) {
        let part = reqwest::multipart::Part::bytes(std::fs::read(&path).unwrap()).file_name("x.mid");
        form = form.part("files", part);
    }
    let dataset: Value = app.post_form("/v1/datasets", form).await.json().await.unwrap();
    let id = dataset["id"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let mut train = Command::new(FUGUE);
    train.args(["train", "--preset", "fugue", "--dataset", &id, "--out"]).arg(&model);
    train.arg("--data-dir").arg(&app.data_dir).args(["--database-url", &app.database_url]);
    train.args([
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "--layers",
        "1",
        "--embedding-size",
        "4",
        "--window",
        "16",
    ]);
    let output = tokio::task::spawn_blocking(move || train.output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(meta(&model)["data"]["source"], format!("dataset {id}"));

    let mut unknown = Command::new(FUGUE);
    unknown.args(["train", "--preset", "fugue", "--dataset", "nope", "--out"]).arg(dir.path().join("x"));
    unknown.arg("--data-dir").arg(&app.data_dir).args(["--database-url", &app.database_url]);
    let output = tokio::task::spawn_blocking(move || unknown.output().unwrap()).await.unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("no dataset `nope`"));
}
