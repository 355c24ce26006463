"""Engine benchmark on tiny random diffusers components (one run, medians and ratios).

Prints:
  * seconds per DisCo iteration at batch 1 and batch 5 and their ratio (target <= 2.5; the
    reference's sequential gradient accumulation is 5x);
  * one iteration vs the sum of its model calls timed alone (target <= 1.15);
  * peak extra memory of one iteration with gradients through the last step (K=1) vs all steps (K=all),
    each measured in a fresh subprocess (ru_maxrss).

The headline configuration keeps Stable Diffusion's proportions (an 8x VAE: 64 px images on 8x8 latents,
as 512 px on 64x64); ``--vae-factor 2`` (64 px on 32x32 latents) shows the compute-bound case, where on a
CPU the batch cost grows with the batch and no implementation can reach the batch-5 target.

Usage: python benchmarks/bench_engine.py [--threads 1] [--steps 25] [--pixels 64] [--vae-factor 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch


def _iteration_seconds(n_images: int, args: argparse.Namespace) -> list[float]:
    from disco_inspect import DiscoConfig, train_token
    from disco_inspect.testing import tiny_classifier, tiny_pipeline

    pipe = tiny_pipeline(seed=0, sample_size=args.pixels // args.vae_factor, vae_factor=args.vae_factor)
    clf = tiny_classifier(seed=0, input_size=args.pixels)
    cfg = DiscoConfig(
        n_images=n_images,
        num_inference_steps=args.steps,
        guidance_scale=7.0,
        max_iters=args.repeats + 1,
        patience=1000,
        accuracy_threshold=1.0,
        lr=0.01,
    )
    run = train_token(pipe, clf, "triangle", config=cfg, progress=False)
    return [r["seconds"] for r in run.trajectory[1:]]  # the first iteration warms up


def _timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _model_calls_alone(n_images: int, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds of each model call of one iteration, timed in isolation."""
    from disco_inspect.engine.sampling import encode, initial_noise
    from disco_inspect.engine.token import ClassToken
    from disco_inspect.testing import tiny_classifier, tiny_pipeline

    pipe = tiny_pipeline(seed=0, sample_size=args.pixels // args.vae_factor, vae_factor=args.vae_factor)
    clf = tiny_classifier(seed=0, input_size=args.pixels)
    tok = ClassToken(pipe, "<S>", "a")
    prompts = ["a photo of a <S> triangle"] * n_images
    noise = initial_noise(pipe, list(range(n_images)), args.pixels, args.pixels)
    with torch.no_grad():
        cond = encode(pipe, prompts)
    hidden = torch.cat([cond, cond])
    lat2 = torch.cat([noise, noise])
    t = torch.tensor(500)

    def text():
        tok.vector.grad = None
        (encode(pipe, prompts) * 1.0).sum().backward()

    def unet_nograd():
        with torch.no_grad():
            pipe.unet(lat2, t, encoder_hidden_states=hidden, return_dict=False)

    def unet_grad():
        h = hidden.detach().requires_grad_(True)
        pipe.unet(lat2, t, encoder_hidden_states=h, return_dict=False)[0].sum().backward()

    def vae():
        z = noise.detach().requires_grad_(True)
        pipe.vae.decode(z / pipe.vae.config.scaling_factor, return_dict=False)[0].sum().backward()

    def classifier():
        x = torch.rand(n_images, 3, args.pixels, args.pixels, requires_grad=True)
        clf(x).sum().backward()

    r = args.repeats
    calls = {
        "text_encoder fwd+bwd": _timed(text, r),
        "unet fwd (no grad)": _timed(unet_nograd, r),
        "unet fwd+bwd": _timed(unet_grad, r),
        "vae decode fwd+bwd": _timed(vae, r),
        "classifier fwd+bwd": _timed(classifier, r),
    }
    calls["sum"] = (
        calls["text_encoder fwd+bwd"]
        + (args.steps - 1) * calls["unet fwd (no grad)"]
        + calls["unet fwd+bwd"]
        + calls["vae decode fwd+bwd"]
        + calls["classifier fwd+bwd"]
    )
    return calls


class _PeakRSS:
    """Samples this process's resident memory every millisecond in a thread (torch releases the GIL)."""

    def __enter__(self) -> _PeakRSS:
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def _memory_child(k: int, args: argparse.Namespace) -> None:
    """In a fresh process: peak resident-memory growth (MB) during one iteration with gradients through ``k`` steps."""
    from disco_inspect import DiscoConfig, train_token
    from disco_inspect.testing import tiny_classifier, tiny_pipeline

    pipe = tiny_pipeline(seed=0, sample_size=args.pixels // args.vae_factor, vae_factor=args.vae_factor)
    clf = tiny_classifier(seed=0, input_size=args.pixels)
    cfg = DiscoConfig(
        n_images=5, num_inference_steps=args.steps, guidance_scale=7.0, grad_steps=k, max_iters=1
    )
    # warm up lazy imports only: freed heap stays resident, so a full warm-up iteration would hide the growth
    train_token(
        pipe,
        clf,
        "triangle",
        config=cfg.replace(n_images=1, num_inference_steps=1, grad_steps=1),
        progress=False,
    )
    pipe = tiny_pipeline(seed=0, sample_size=args.pixels // args.vae_factor, vae_factor=args.vae_factor)
    with _PeakRSS() as m:
        train_token(pipe, clf, "triangle", config=cfg, progress=False)
    print(json.dumps({"k": k, "peak_growth_mb": (m.peak - m.start) / 2**20}))


def _config_block(args: argparse.Namespace) -> None:
    lat = args.pixels // args.vae_factor
    print(
        f"## {args.pixels} px images, {args.vae_factor}x VAE ({lat}x{lat} latents), {args.steps} steps, CFG 7, grad_steps 1"
    )
    s1 = statistics.median(_iteration_seconds(1, args))
    s5 = statistics.median(_iteration_seconds(5, args))
    print(f"iteration batch 1: {s1:.3f} s (median of {args.repeats})")
    print(f"iteration batch 5: {s5:.3f} s (median of {args.repeats})")
    print(f"ratio batch5/batch1: {s5 / s1:.2f}  (target <= 2.5; sequential accumulation = 5.0)")
    calls = _model_calls_alone(5, args)
    for k, v in calls.items():
        if k != "sum":
            print(f"  model call {k}: {v * 1000:.1f} ms")
    print(f"sum of model calls (batch 5): {calls['sum']:.3f} s")
    print(f"ratio iteration/model calls: {s5 / calls['sum']:.2f}  (target <= 1.15)")
    mem = {}
    for k in (1, -1):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(k),
                "--threads",
                str(args.threads),
                "--steps",
                str(args.steps),
                "--pixels",
                str(args.pixels),
                "--vae-factor",
                str(args.vae_factor),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        mem[k] = json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_mb"]
    print(
        f"peak memory growth of one batch-5 iteration: K=1 {mem[1]:.0f} MB, K=all ({args.steps}) {mem[-1]:.0f} MB, "
        f"ratio K=all/K=1 {mem[-1] / max(mem[1], 1e-9):.1f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--pixels", type=int, default=64, help="image size")
    p.add_argument("--vae-factor", type=int, default=8, choices=[2, 4, 8], help="VAE downsampling (SD: 8)")
    p.add_argument("--also-compute-bound", action="store_true", help="also run the 2x-VAE configuration")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        _memory_child(args.memory_child, args)
        return
    load = os.getloadavg()[0]
    print(
        f"# machine: {os.cpu_count()} cores, load average {load:.2f}, torch {torch.__version__}, {args.threads} thread(s)"
    )
    if load > 0.5 * (os.cpu_count() or 1):
        print("# WARNING: the machine is busy; absolute times are unreliable, ratios less so")
    _config_block(args)
    if args.also_compute_bound and args.vae_factor != 2:
        args.vae_factor = 2
        _config_block(args)


if __name__ == "__main__":
    main()
