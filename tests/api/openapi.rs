use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Options, project_path, spawn_app};

#[test]
fn committed_document_matches_the_code() {
    let generated = serde_json::to_value(fugue::api::openapi()).unwrap();
    let path = project_path("openapi.json");
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == generated,
        "openapi.json is stale: run `target/debug/fugue openapi > openapi.json` and commit it"
    );
}

#[tokio::test]
async fn served_document_is_openapi_3_1_with_every_route() {
    let app = spawn_app(Options::default()).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/health", "/ready", "/metrics", "/v1/system"] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
}

/// Files (MIDI, audio, the SoundFont) are described as binary strings, and every
/// route that answers one offers `application/octet-stream` too, so generated
/// clients read them as bytes.
#[test]
fn binary_answers_are_binary_strings_offered_as_octet_streams_too() {
    let document = serde_json::to_value(fugue::api::openapi()).unwrap();
    let binary = &document["components"]["schemas"]["Binary"];
    assert_eq!((binary["type"].as_str(), binary["format"].as_str()), (Some("string"), Some("binary")));
    let mut files = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(content) = operation["responses"]["200"]["content"].as_object() else { continue };
            for (media_type, body) in content {
                if media_type.starts_with("audio/") || media_type == "application/octet-stream" {
                    assert_eq!(
                        body["schema"]["$ref"], "#/components/schemas/Binary",
                        "{method} {path} {media_type}"
                    );
                    files += 1;
                    assert!(
                        content.contains_key("application/octet-stream"),
                        "{method} {path} offers no octet stream"
                    );
                }
            }
        }
    }
    assert_eq!(files, 2 + 3 + 1, "the MIDI, audio and SoundFont routes' answers");
}

/// The README's limits row for hyperparameters, as the range table spells it.
fn ranges_as_the_readme_writes_them() -> String {
    let ranges: Vec<String> =
        fugue::model::hyperparameters::ranges().map(|(field, range)| format!("`{field}` {range}")).collect();
    format!("| hyperparameters | {}; unknown names refused |", ranges.join(", "))
}

/// The README's table of hyperparameters: every one the server and the CLI take,
/// with its meaning and range, in the table's order.
fn hyperparameter_table_as_the_readme_writes_it() -> String {
    let mut table = String::from("| hyperparameter | flag | meaning | allowed |\n|---|---|---|---|\n");
    for declared in fugue::model::hyperparameters::DECLARED {
        let flag = declared.name.replace('_', "-");
        let allowed = declared.range.map(|range| range.to_string()).unwrap_or_else(|| "—".to_owned());
        table += &format!("| `{}` | `--{flag}` | {} | {allowed} |\n", declared.name, declared.meaning);
    }
    table
}

#[test]
fn the_readme_lists_every_hyperparameter_as_the_table_declares_it() {
    let readme = std::fs::read_to_string(project_path("README.md")).unwrap();
    let table = hyperparameter_table_as_the_readme_writes_it();
    assert!(readme.contains(&table), "the README should have the hyperparameter table\n{table}");
}

#[test]
fn the_readme_and_the_document_state_the_hyperparameter_ranges_the_server_enforces() {
    let readme = std::fs::read_to_string(project_path("README.md")).unwrap();
    let row = ranges_as_the_readme_writes_them();
    assert!(
        readme.lines().any(|line| line.starts_with(&row)),
        "the README's limits table should have the row\n{row}"
    );

    let document = serde_json::to_value(fugue::api::openapi()).unwrap();
    let properties = &document["components"]["schemas"]["HyperparameterOverrides"]["properties"];
    for (field, range) in fugue::model::hyperparameters::ranges() {
        assert_eq!(properties[field]["maximum"].as_f64(), Some(range.high), "{field}");
        let (minimum, exclusive) = match range.low {
            fugue::model::hyperparameters::Low::From(low) => (Some(low), None),
            fugue::model::hyperparameters::Low::Above(low) => (None, Some(low)),
        };
        assert_eq!(properties[field]["minimum"].as_f64(), minimum, "{field}");
        assert_eq!(properties[field]["exclusiveMinimum"].as_f64(), exclusive, "{field}");
    }
}

/// The README's table of what a search of each preset may draw, and draws by
/// default (with nothing set in `hyperparameters`), as `model::search` declares it.
fn search_table_as_the_readme_writes_it() -> String {
    use fugue::model::search::{default_space, searchable};
    let mut table = String::from("| preset | searchable | default space |\n|---|---|---|\n");
    for &preset in <fugue::shared::Preset as clap::ValueEnum>::value_variants() {
        let names: Vec<String> = searchable(preset).iter().map(|name| format!("`{name}`")).collect();
        let space: Vec<String> = default_space(preset, &Default::default())
            .iter()
            .map(|(name, interval)| format!("`{name}` {interval}"))
            .collect();
        table += &format!("| `{}` | {} | {} |\n", preset.name(), names.join(", "), space.join(", "));
    }
    table
}

#[test]
fn the_readme_states_each_preset_s_search_space_and_the_search_s_limits() {
    let readme = std::fs::read_to_string(project_path("README.md")).unwrap();
    let table = search_table_as_the_readme_writes_it();
    assert!(readme.contains(&table), "the README should have the search table\n{table}");
    let trials = fugue::model::search::MIN_TRIALS..=fugue::model::search::MAX_TRIALS;
    let budget = fugue::model::hyperparameters::range_of("budget_minutes").unwrap();
    let row = format!("| a search | `trials` {}–{}, `budget_minutes` {budget}", trials.start(), trials.end());
    assert!(
        readme.lines().any(|line| line.starts_with(&row)),
        "the README's limits table should have the row\n{row}"
    );
}
