//! Integration tests: one binary (libtorch links once), one file per concern.
//! Every test starts the real server on port 0 against a real database.

mod analysis;
mod architecture;
mod attempts;
mod audio;
mod auth;
mod binary;
mod datasets;
mod errors;
mod evaluations;
mod generate;
mod harmonize;
mod health;
mod jobs;
mod midi;
mod nodes;
mod objects;
mod openapi;
mod originality;
mod parts;
mod repr;
mod search;
mod storage;
mod streams;
mod supervision;
mod support;
mod training;
mod workers;
