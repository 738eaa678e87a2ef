//! `fugue bench train --head nade`: training steps of the `pianoroll-nade`
//! network (88-key frames → LSTM → NADE over the keys) on random frames, in
//! frames per second with the CPU time spent in user space and in the kernel,
//! next to the plain PyTorch loop of `bench/pytorch_nade.py` in the same run.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{CpuTimes, reference};
use crate::cli::args::TrainBenchArgs;
use crate::model::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use crate::model::roll_net::{RollNet, RollNetConfig, RollOutput};
use crate::repr::pianoroll::KEYS;

/// Share of keys on in the random frames (about four of 88, as in the chorales).
const KEY_DENSITY: f64 = 0.045;

pub fn run(args: &TrainBenchArgs) -> anyhow::Result<()> {
    tch::set_num_threads(args.reference.threads.max(1));
    for size in &args.sizes {
        let (layers, hidden) = super::layers_and_hidden(size)?;
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let output = RollOutput::Nade { hidden: args.nade_hidden };
        let net = RollNet::new(&vs.root(), RollNetConfig::plain(hidden, layers, output));
        let config = OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            clip_grad_norm: Some(1.0),
            weight_averaging: 0.0,
        };
        let mut optimizer = Optimizer::new(&vs, config);
        let frames = Tensor::rand([args.batch, args.seq, KEYS as i64], (Kind::Float, Device::Cpu))
            .lt(KEY_DENSITY)
            .to_kind(Kind::Float);
        let lengths = vec![args.seq; args.batch as usize];
        let unshifted = vec![0; lengths.len()];
        let mut step = || {
            let (nll, count) = net.nll(&frames, &lengths, &unshifted, true);
            optimizer.backward_step(&(nll / count as f64));
            count
        };
        for _ in 0..5 {
            step();
        }
        let cpu_before = CpuTimes::of(std::process::id())?;
        let started = Instant::now();
        let predicted: i64 = (0..args.steps).map(|_| step()).sum();
        let seconds = started.elapsed().as_secs_f64();
        let cpu = CpuTimes::of(std::process::id())?.since(cpu_before);
        let ours = predicted as f64 / seconds;
        print!(
            "nade-train {size} nade {} batch {} seq {}: fugue {ours:.0} frames/s (user {:.1} s, sys {:.1} s)",
            args.nade_hidden, args.batch, args.seq, cpu.user, cpu.system
        );
        if let Some(python) = &args.reference.python {
            let answer = reference_rate(args, python, layers, hidden)?;
            let theirs = answer["frames_per_s"].as_f64().context("the reference printed no frames_per_s")?;
            let (user, system) = (answer["user_s"].as_f64(), answer["sys_s"].as_f64());
            print!(
                ", pytorch {theirs:.0} frames/s (user {:.1} s, sys {:.1} s), ratio {:.2}x",
                user.unwrap_or(f64::NAN),
                system.unwrap_or(f64::NAN),
                ours / theirs
            );
        }
        println!();
    }
    Ok(())
}

fn reference_rate(
    args: &TrainBenchArgs,
    python: &Path,
    layers: i64,
    hidden: i64,
) -> anyhow::Result<serde_json::Value> {
    let number = |n: i64| n.to_string();
    let mut command = Command::new(python);
    command
        .arg(&args.nade_reference)
        .args(["--batch", &number(args.batch), "--seq", &number(args.seq)])
        .args([
            "--hidden",
            &number(hidden),
            "--layers",
            &number(layers),
            "--nade-hidden",
            &number(args.nade_hidden),
        ])
        .args(["--steps", &args.steps.to_string(), "--threads", &args.reference.threads.to_string()]);
    reference(command)
}
