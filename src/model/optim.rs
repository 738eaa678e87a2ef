//! Adam and RMSprop written out over the VarStore's tensors, because tch's
//! optimizers keep their state inside libtorch where a checkpoint cannot reach it.
//! Here the moments are plain tensors, saved with every checkpoint, so a resumed
//! run continues exactly where the killed one stopped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::VarStore;

use super::roll_net::MEMBER_SCOPE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Rmsprop,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Largest L2 norm of all gradients together (of each member's on its own,
    /// for a network of members); `None` leaves them as they are.
    pub clip_grad_norm: Option<f64>,
    /// Keep an exponential moving average of the weights with this decay (0: none).
    /// Validation and the saved model use the average: on small corpora it scores
    /// better than the last step's weights.
    #[serde(default)]
    pub weight_averaging: f64,
}

const ADAM_BETAS: (f64, f64) = (0.9, 0.999);
const RMSPROP_ALPHA: f64 = 0.99;
const EPS: f64 = 1e-8;

pub struct Optimizer {
    config: OptimizerConfig,
    /// Trainable parameters by name, in name order.
    params: Vec<(String, Tensor)>,
    /// First moment (Adam) per parameter.
    first: Vec<Tensor>,
    /// Second moment (Adam) or running mean square (RMSprop) per parameter.
    second: Vec<Tensor>,
    /// Moving average of each parameter (empty when averaging is off).
    averaged: Vec<Tensor>,
    /// Indices into `params` whose gradients are clipped together.
    clip_groups: Vec<Vec<usize>>,
    steps: i64,
}

/// The member whose variable `name` is (`member<i>.…`), or None outside members.
fn member_of(name: &str) -> Option<&str> {
    let (scope, _) = name.split_once('.')?;
    scope.strip_prefix(MEMBER_SCOPE)?.parse::<u32>().ok().map(|_| scope)
}

impl Optimizer {
    pub fn new(vs: &VarStore, config: OptimizerConfig) -> Optimizer {
        let params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, tensor)| tensor.requires_grad())
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let zeros = |params: &[(String, Tensor)]| params.iter().map(|(_, p)| p.zeros_like()).collect();
        let averaged = if config.weight_averaging > 0.0 {
            params.iter().map(|(_, p)| p.detach().copy()).collect()
        } else {
            Vec::new()
        };
        let mut clip_groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
        for (index, (name, _)) in params.iter().enumerate() {
            clip_groups.entry(member_of(name)).or_default().push(index);
        }
        let clip_groups = clip_groups.into_values().collect();
        Optimizer {
            first: zeros(&params),
            second: zeros(&params),
            averaged,
            clip_groups,
            params,
            config,
            steps: 0,
        }
    }

    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    pub fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    /// Computes gradients of `loss`, clips them, and updates every parameter.
    pub fn backward_step(&mut self, loss: &Tensor) {
        for (_, param) in &self.params {
            let mut grad = param.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
        loss.backward();
        tch::no_grad(|| {
            self.clip();
            self.steps += 1;
            for index in 0..self.params.len() {
                self.update(index);
            }
            self.average();
        });
    }

    /// Moves the average towards the new weights; early on, with a shorter memory
    /// (the usual warm-up), so the start's random weights fade fast.
    fn average(&mut self) {
        let decay = self.config.weight_averaging.min((1 + self.steps) as f64 / (10 + self.steps) as f64);
        for ((_, param), averaged) in self.params.iter().zip(&mut self.averaged) {
            let _ = averaged.g_mul_scalar_(decay).g_add_(&(param * (1.0 - decay)));
        }
    }

    /// Swaps the weights with their moving average (a no-op without averaging);
    /// calling it again swaps them back.
    pub fn swap_averaged(&mut self) {
        tch::no_grad(|| {
            for ((_, param), averaged) in self.params.iter_mut().zip(&mut self.averaged) {
                let current = param.detach().copy();
                param.copy_(averaged);
                averaged.copy_(&current);
            }
        });
    }

    /// Starts the moving average afresh from the weights as they are (after a
    /// run went back to its best ones, which are already an average).
    pub fn restart_average(&mut self) {
        tch::no_grad(|| {
            for ((_, param), averaged) in self.params.iter().zip(&mut self.averaged) {
                averaged.copy_(param);
            }
        });
    }

    /// Scales gradients down to the clipping norm, each group's on its own. A
    /// network's members learn from the mean of their losses, so each member's
    /// gradient is its own divided by their number, and so is its norm's limit:
    /// each clips as it would alone.
    fn clip(&self) {
        let Some(max) = self.config.clip_grad_norm else { return };
        let max = max / self.clip_groups.len() as f64;
        for group in &self.clip_groups {
            let grads: Vec<Tensor> =
                group.iter().map(|&index| self.params[index].1.grad()).filter(Tensor::defined).collect();
            if grads.is_empty() {
                continue;
            }
            let norms: Vec<Tensor> = grads.iter().map(Tensor::norm).collect();
            let total = f64::try_from(Tensor::stack(&norms, 0).norm()).unwrap_or(0.0);
            if total > max {
                for mut grad in grads {
                    let _ = grad.g_mul_scalar_(max / (total + 1e-6));
                }
            }
        }
    }

    fn update(&mut self, index: usize) {
        let param = &mut self.params[index].1;
        let mut grad = param.grad();
        if !grad.defined() {
            return;
        }
        if self.config.weight_decay > 0.0 {
            grad = &grad + &*param * self.config.weight_decay;
        }
        let lr = self.config.learning_rate;
        let (first, second) = (&mut self.first[index], &mut self.second[index]);
        let step = match self.config.kind {
            OptimizerKind::Adam => {
                let (beta1, beta2) = ADAM_BETAS;
                let _ = first.g_mul_scalar_(beta1).g_add_(&(&grad * (1.0 - beta1)));
                let _ = second.g_mul_scalar_(beta2).g_add_(&(&grad * &grad * (1.0 - beta2)));
                let correction1 = 1.0 - beta1.powi(self.steps as i32);
                let correction2 = 1.0 - beta2.powi(self.steps as i32);
                (&*first / correction1) / ((&*second / correction2).sqrt() + EPS) * lr
            }
            OptimizerKind::Rmsprop => {
                let _ = second.g_mul_scalar_(RMSPROP_ALPHA).g_add_(&(&grad * &grad * (1.0 - RMSPROP_ALPHA)));
                &grad / (second.sqrt() + EPS) * lr
            }
        };
        let _ = param.g_sub_(&step);
    }

    /// The optimizer's state as named tensors, for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut named = vec![("optimizer.steps".to_owned(), Tensor::from(self.steps))];
        for ((name, _), (first, second)) in self.params.iter().zip(self.first.iter().zip(&self.second)) {
            named.push((format!("optimizer.first.{name}"), first.shallow_clone()));
            named.push((format!("optimizer.second.{name}"), second.shallow_clone()));
        }
        for ((name, _), averaged) in self.params.iter().zip(&self.averaged) {
            named.push((format!("optimizer.average.{name}"), averaged.shallow_clone()));
        }
        named
    }

    /// Restores what [`Optimizer::state`] saved.
    pub fn load_state(&mut self, named: &BTreeMap<String, Tensor>) -> anyhow::Result<()> {
        let get = |key: String| named.get(&key).ok_or_else(|| anyhow::anyhow!("checkpoint lacks `{key}`"));
        self.steps = get("optimizer.steps".to_owned())?.int64_value(&[]);
        tch::no_grad(|| -> anyhow::Result<()> {
            for (index, (name, _)) in self.params.iter().enumerate() {
                self.first[index].copy_(get(format!("optimizer.first.{name}"))?);
                self.second[index].copy_(get(format!("optimizer.second.{name}"))?);
            }
            for (averaged, (name, _)) in self.averaged.iter_mut().zip(&self.params) {
                averaged.copy_(get(format!("optimizer.average.{name}"))?);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::{Init, VarStore};
    use tch::{Device, Kind, Tensor};

    use super::*;

    fn fit(kind: OptimizerKind) -> f64 {
        // Minimise (w - 3)² from w = 0.
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], Init::Const(0.0));
        let config = OptimizerConfig {
            kind,
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_grad_norm: Some(10.0),
            weight_averaging: 0.0,
        };
        let mut optimizer = Optimizer::new(&vs, config);
        for _ in 0..300 {
            let loss = (&w - 3.0).square().sum(Kind::Float);
            optimizer.backward_step(&loss);
        }
        f64::try_from(&w).unwrap()
    }

    #[test]
    fn both_optimizers_find_the_minimum() {
        assert!((fit(OptimizerKind::Adam) - 3.0).abs() < 0.05);
        assert!((fit(OptimizerKind::Rmsprop) - 3.0).abs() < 0.05);
    }

    #[test]
    fn state_round_trips() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], Init::Const(1.0));
        let config = OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 0.1,
            weight_decay: 0.01,
            clip_grad_norm: None,
            weight_averaging: 0.9,
        };
        let mut optimizer = Optimizer::new(&vs, config.clone());
        optimizer.backward_step(&w.square().sum(Kind::Float));
        let saved: BTreeMap<String, Tensor> = optimizer.state().into_iter().collect();
        let mut restored = Optimizer::new(&vs, config);
        restored.load_state(&saved).unwrap();
        assert_eq!(restored.steps, 1);
        assert!(restored.first[0].allclose(&optimizer.first[0], 0.0, 0.0, false));
        assert!(restored.averaged[0].allclose(&optimizer.averaged[0], 0.0, 0.0, false));
        assert!(restored.load_state(&BTreeMap::new()).is_err());
    }

    #[test]
    fn the_average_lags_the_weights_and_swaps_in_and_out() {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[1], Init::Const(0.0));
        let config = OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_grad_norm: None,
            weight_averaging: 0.99,
        };
        let mut optimizer = Optimizer::new(&vs, config);
        for _ in 0..50 {
            optimizer.backward_step(&(&w - 3.0).square().sum(Kind::Float));
        }
        let weight = f64::try_from(&w).unwrap();
        optimizer.swap_averaged();
        let average = f64::try_from(&w).unwrap();
        assert!(average > 0.0 && average < weight, "the average ({average}) trails the weight ({weight})");
        optimizer.swap_averaged();
        assert_eq!(f64::try_from(&w).unwrap(), weight, "swapping twice restores the weights");
    }

    #[test]
    fn each_member_of_a_network_clips_its_own_gradient() {
        let vs = VarStore::new(Device::Cpu);
        let big = (vs.root() / "member0").var("w", &[1], Init::Const(0.0));
        let small = (vs.root() / "member1").var("w", &[1], Init::Const(0.0));
        let config = OptimizerConfig {
            kind: OptimizerKind::Adam,
            learning_rate: 0.1,
            weight_decay: 0.0,
            clip_grad_norm: Some(1.0),
            weight_averaging: 0.0,
        };
        let optimizer = Optimizer::new(&vs, config);
        assert_eq!(optimizer.clip_groups.len(), 2);
        // The members' mean loss: gradients 500 and 0.2, each half its member's own.
        (((&big * 1000.0) + (&small * 0.4)) / 2.0).sum(Kind::Float).backward();
        optimizer.clip();
        let grad = |w: &Tensor| f64::try_from(w.grad()).unwrap();
        assert!((grad(&big) - 0.5).abs() < 1e-4, "clipped to half the norm: {}", grad(&big));
        assert!((grad(&small) - 0.2).abs() < 1e-6, "untouched by the other member: {}", grad(&small));
        assert_eq!(member_of("lstm.weight_hh_l0"), None);
        assert_eq!(member_of("member12.out.bias"), Some("member12"));
    }
}
