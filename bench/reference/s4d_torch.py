#!/usr/bin/python3
"""Independent PyTorch implementation of the S4D example model (sequential images),
used only as a timing/accuracy reference next to the ssmhost C++ engine.

Written from the formulas in docs/math.md (sections 0-2):
  encoder Linear(1,H) -> n_layers x [post-norm residual S4D block] -> mean pool -> Linear(H,10)

Modes:
  --bench     time full training steps (forward, backward, AdamW step) on random data
  --selftest  check the S4D kernel and layer against an explicit float64 recurrence

Run with Debian's interpreter, which has torch: /usr/bin/python3 s4d_torch.py --bench
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def s4d_kernel(log_dt, log_A_real, A_imag, C_pairs, L):
    """K[h, l] = 2 Re sum_n C[h,n] * (exp(dt A)-1)/A * exp(dt A * l), ZOH, B = 1."""
    dt = torch.exp(log_dt)                                      # (H)
    C = torch.view_as_complex(C_pairs)                          # (H, N2)
    A = -torch.exp(log_A_real) + 1j * A_imag                    # (H, N2), Re A < 0
    dtA = A * dt.unsqueeze(-1)                                  # (H, N2)
    # exponent dtA*l for every l (log-Vandermonde: never take repeated powers)
    l = torch.arange(L, device=A.device, dtype=dt.dtype)
    vand = torch.exp(dtA.unsqueeze(-1) * l)                     # (H, N2, L)
    W = C * (torch.exp(dtA) - 1.0) / A                          # C * Bbar, (H, N2)
    return 2 * torch.einsum('hn,hnl->hl', W, vand).real         # (H, L)


class S4DKernel(nn.Module):
    """Diagonal SSM convolution kernel parameters (S4D-Lin init); see s4d_kernel."""

    def __init__(self, d_model, d_state=64, dt_min=1e-3, dt_max=1e-1):
        super().__init__()
        H, N2 = d_model, d_state // 2
        # log dt ~ U[log dt_min, log dt_max] (log-uniform dt), one per channel
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        # C complex randn, stored as (re, im) pairs so the optimiser sees real tensors
        C = torch.randn(H, N2, dtype=torch.cfloat)
        self.C = nn.Parameter(torch.view_as_real(C))
        # S4D-Lin init: Re A = -1/2 (stored as log 0.5), Im A = pi n
        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N2)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(N2).float().repeat(H, 1))
        # these three get their own optimiser group (lower lr, no weight decay)
        for p in (self.log_dt, self.log_A_real, self.A_imag):
            p._ssm_param = True

    def forward(self, L):
        return s4d_kernel(self.log_dt, self.log_A_real, self.A_imag, self.C, L)


class ChannelDropout(nn.Module):
    """Dropout with one mask per (batch, channel), tied over the sequence.

    The official example uses tied dropout (nn.Dropout1d on (B,H,L)); we write it out
    so the semantics are explicit and independent of torch version quirks.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):  # x: (B, H, L)
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.shape[0], x.shape[1], 1, device=x.device, dtype=x.dtype)
        keep.bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class S4D(nn.Module):
    """S4D layer on (B, H, L): y = GELU(K * u + D u) -> dropout -> Conv1d(H,2H,1) -> GLU."""

    def __init__(self, d_model, d_state=64, dropout=0.1):
        super().__init__()
        self.kernel = S4DKernel(d_model, d_state)
        self.D = nn.Parameter(torch.randn(d_model))
        self.dropout = ChannelDropout(dropout)
        # kernel-size-1 conv over channels == a per-position Linear(H, 2H)
        self.output_linear = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)

    def ssm(self, u):
        """Causal convolution with the SSM kernel plus skip term, no nonlinearity."""
        L = u.shape[-1]
        K = self.kernel(L)                                          # (H, L)
        # n = 2L so the circular FFT convolution does not wrap (causal linear conv)
        K_f = torch.fft.rfft(K, n=2 * L)
        u_f = torch.fft.rfft(u, n=2 * L)
        y = torch.fft.irfft(u_f * K_f, n=2 * L)[..., :L]
        return y + u * self.D.unsqueeze(-1)

    def forward(self, u):  # u: (B, H, L)
        y = self.dropout(F.gelu(self.ssm(u)))
        return F.glu(self.output_linear(y), dim=1)                  # GLU over channels


class S4DModel(nn.Module):
    def __init__(self, d_input=1, d_output=10, d_model=128, n_layers=4, d_state=64,
                 dropout=0.1):
        super().__init__()
        self.encoder = nn.Linear(d_input, d_model)
        self.layers = nn.ModuleList([S4D(d_model, d_state, dropout) for _ in range(n_layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(d_model) for _ in range(n_layers)])
        self.dropouts = nn.ModuleList([ChannelDropout(dropout) for _ in range(n_layers)])
        self.decoder = nn.Linear(d_model, d_output)

    def forward(self, x):  # x: (B, L, d_input)
        x = self.encoder(x).transpose(-1, -2)                       # (B, H, L)
        for layer, norm, drop in zip(self.layers, self.norms, self.dropouts):
            z = drop(layer(x))
            x = z + x
            # post-norm: LayerNorm over channels, which sit on dim 1 here
            x = norm(x.transpose(-1, -2)).transpose(-1, -2)
        x = x.mean(dim=-1)                                          # mean pool over L
        return self.decoder(x)


def make_optimizer(model, lr=0.01, weight_decay=0.01, ssm_lr=0.001, total_steps=100):
    """AdamW with the SSM parameters (log_dt, log_A_real, A_imag) in their own group."""
    ssm = [p for p in model.parameters() if getattr(p, '_ssm_param', False)]
    rest = [p for p in model.parameters() if not getattr(p, '_ssm_param', False)]
    opt = torch.optim.AdamW([
        {'params': rest, 'lr': lr, 'weight_decay': weight_decay},
        {'params': ssm, 'lr': ssm_lr, 'weight_decay': 0.0},
    ])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return opt, sched


# ----------------------------------------------------------------------------- self-test

def recurrence_ssm(kern, D, u):
    """Explicit ZOH recurrence, float64: x_k = Abar x_{k-1} + Bbar u_k, y = 2Re(C x) + D u.

    u: (B, H, L) real. Returns y (B, H, L). Deliberately a plain Python loop over time.
    """
    dt = torch.exp(kern.log_dt)
    C = torch.view_as_complex(kern.C)
    A = -torch.exp(kern.log_A_real) + 1j * kern.A_imag
    dtA = A * dt.unsqueeze(-1)
    Abar = torch.exp(dtA)
    Bbar = (torch.exp(dtA) - 1.0) / A
    Bsz, H, L = u.shape
    x = torch.zeros(Bsz, H, A.shape[-1], dtype=C.dtype)
    ys = []
    for k in range(L):
        x = Abar * x + Bbar * u[:, :, k:k + 1]
        ys.append(2 * (C * x).sum(-1).real + D * u[:, :, k])
    return torch.stack(ys, dim=-1)


def selftest():
    torch.manual_seed(0)
    H, N, L, Bsz = 3, 8, 37, 2
    ok = True
    with torch.no_grad():
        layer = S4D(H, N, dropout=0.0).double()
        # spread dt wider than init so the test covers slow and fast decays
        layer.kernel.log_dt.copy_(torch.linspace(math.log(1e-3), math.log(0.5), H))

        # 1) kernel == impulse response of the recurrence (u = delta at t=0, D = 0)
        K = layer.kernel(L)
        delta = torch.zeros(1, H, L, dtype=torch.float64)
        delta[..., 0] = 1.0
        K_rec = recurrence_ssm(layer.kernel, torch.zeros(H, dtype=torch.float64), delta)[0]
        err_k = (K - K_rec).abs().max().item() / K_rec.abs().max().item()

        # 2) FFT convolution + D u == recurrence output on random input
        u = torch.randn(Bsz, H, L, dtype=torch.float64)
        y = layer.ssm(u)
        y_rec = recurrence_ssm(layer.kernel, layer.D, u)
        err_y = (y - y_rec).abs().max().item() / y_rec.abs().max().item()

    for name, err in (('kernel vs recurrence impulse response', err_k),
                      ('FFT conv + Du vs recurrence', err_y)):
        good = err < 1e-10
        ok &= good
        print(f'{"ok  " if good else "FAIL"} {name}: rel max err {err:.2e}')

    # 3) autograd through the complex kernel formula matches finite differences
    kern = S4DKernel(2, 4).double()
    kern.log_dt.data.copy_(torch.tensor([math.log(0.05), math.log(0.3)], dtype=torch.float64))
    w = torch.randn(2, 9, dtype=torch.float64)
    inputs = tuple(p.detach().clone().requires_grad_(True)
                   for p in (kern.log_dt, kern.log_A_real, kern.A_imag, kern.C))
    grad_ok = torch.autograd.gradcheck(lambda *p: (s4d_kernel(*p, 9) * w).sum(), inputs,
                                       eps=1e-6, atol=1e-7, rtol=1e-6, raise_exception=False)
    ok &= grad_ok
    print(f'{"ok  " if grad_ok else "FAIL"} kernel autograd vs finite differences')

    print('PASS' if ok else 'FAIL')
    return 0 if ok else 1


# ----------------------------------------------------------------------------- bench

def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = S4DModel(d_input=1, d_output=10, d_model=args.d_model, n_layers=args.n_layers,
                     d_state=args.d_state, dropout=0.1)
    model.train()
    total = args.warmup + args.steps
    opt, sched = make_optimizer(model, total_steps=total)
    x = torch.randn(args.batch, args.seq_len, 1)
    y = torch.randint(0, 10, (args.batch,))
    n_params = sum(p.numel() for p in model.parameters())
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, params {n_params}, '
          f'B={args.batch} L={args.seq_len} H={args.d_model} layers={args.n_layers} '
          f'N={args.d_state}', flush=True)

    # the box is shared: record load so a noisy measurement can be recognised later
    load_before = os.getloadavg()[0]
    times = []
    for i in range(total):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        dt = time.perf_counter() - t0
        tag = 'warmup' if i < args.warmup else 'step'
        print(f'{tag} {i}: {dt:.3f} s  loss {loss.item():.4f}', flush=True)
        if i >= args.warmup:
            times.append(dt)

    med = statistics.median(times)
    load_after = os.getloadavg()[0]
    print(f'median step: {med:.3f} s over {len(times)} steps '
          f'(1-min load avg {load_before:.2f} before, {load_after:.2f} after)')
    if args.json:
        out = {'impl': 'pytorch', 'torch_version': torch.__version__, 'threads': args.threads,
               'batch': args.batch, 'seq_len': args.seq_len, 'd_model': args.d_model,
               'n_layers': args.n_layers, 'd_state': args.d_state,
               'step_s_median': med, 'step_s': times,
               'loadavg_1min_before': load_before, 'loadavg_1min_after': load_after}
        with open(args.json, 'w') as fh:
            json.dump(out, fh, indent=2)
            fh.write('\n')
        print(f'wrote {args.json}')
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument('--bench', action='store_true')
    mode.add_argument('--selftest', action='store_true')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--seq-len', type=int, default=784)
    ap.add_argument('--d-model', type=int, default=128)
    ap.add_argument('--n-layers', type=int, default=4)
    ap.add_argument('--d-state', type=int, default=64)
    ap.add_argument('--json', default=None, help='write the bench result here')
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    if args.steps < 1:
        ap.error('--steps must be >= 1')
    return bench(args)


if __name__ == '__main__':
    sys.exit(main())
