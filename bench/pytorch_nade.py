#!/usr/bin/env python3
"""Plain PyTorch RNN-NADE training loop, for `fugue bench train --head nade`.

88-key piano-roll frames -> stacked LSTM -> a NADE over the keys, low to high
(Boulanger-Lewandowski et al. 2012), written the direct way: the hidden layer's
input for key k is c + sum_{j<k} x_j W_j, an exclusive cumulative sum over the keys.
Full forward/backward/Adam steps (gradients clipped at 1) on random frames
(about 4 keys of 88 on); prints one JSON line: frames predicted per second and
the CPU seconds the timed steps spent in user space and in the kernel.

  python3 bench/pytorch_nade.py --batch 8 --seq 256 --hidden 256 --layers 2 --nade-hidden 150
"""
import argparse
import json
import resource
import time

import torch

KEYS = 88


class RnnNade(torch.nn.Module):
    def __init__(self, hidden, layers, nade_hidden):
        super().__init__()
        self.lstm = torch.nn.LSTM(KEYS, hidden, layers, batch_first=True)
        self.w = torch.nn.Parameter(torch.randn(KEYS, nade_hidden) * 0.01)
        self.v = torch.nn.Parameter(torch.randn(KEYS, nade_hidden) * 0.01)
        self.c = torch.nn.Linear(hidden, nade_hidden)
        self.b = torch.nn.Linear(hidden, KEYS)

    def nll(self, frames):
        out, _ = self.lstm(frames[:, :-1])
        hidden = out.reshape(-1, out.shape[-1])
        targets = frames[:, 1:].reshape(-1, KEYS)
        contributions = targets.unsqueeze(2) * self.w.unsqueeze(0)
        before = contributions.cumsum(1) - contributions
        activations = torch.sigmoid(self.c(hidden).unsqueeze(1) + before)
        logits = self.b(hidden) + (activations * self.v.unsqueeze(0)).sum(2)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
        return loss, targets.shape[0]


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--nade-hidden", type=int, default=150)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = RnnNade(args.hidden, args.layers, args.nade_hidden)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    frames = (torch.rand(args.batch, args.seq, KEYS) < 0.045).float()

    def step():
        loss, count = model.nll(frames)
        opt.zero_grad()
        (loss / count).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return count  # frames 2..T of each sequence, as fugue predicts them

    for _ in range(5):
        step()
    user, system = cpu()
    started = time.perf_counter()
    predicted = sum(step() for _ in range(args.steps))
    seconds = time.perf_counter() - started
    user_after, system_after = cpu()
    print(json.dumps({
        "impl": "pytorch-python", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "frames_per_s": round(predicted / seconds, 1), "user_s": round(user_after - user, 2),
        "sys_s": round(system_after - system, 2), **vars(args),
    }))


if __name__ == "__main__":
    main()
