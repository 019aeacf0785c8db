"""Where a training step of the speaker recipe spends its time on this CPU.

Times one optimizer step (forward, backward, AdamW) of the recipe's model on a random batch of
the recipe's shape (batch_size x crop frames x 80 mel bins), and the forward + backward of its
parts: the subsampling convolutions (at several channel counts) and everything after them.
Prints a table and writes JSON; records the CPU and its SIMD flags.

    python benchmarks/step_profile.py [--json benchmarks/results/step_profile.json] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, print_table, timed, write_json  # noqa: E402

from speechattn.recipes.schema import load_recipe  # noqa: E402
from speechattn.utils.device import autocast, resolve_device, resolve_precision  # noqa: E402
from speechattn.nn.losses import build_loss  # noqa: E402
from speechattn.nn.subsampling import Subsampling  # noqa: E402
from speechattn.recipes.builders import build_embedder
from speechattn.recipes.speaker import SpeakerRecipe

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "speaker.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 32, 16],
                        help="subsampling channel counts to time")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    recipe = load_recipe(SpeakerRecipe, args.recipe, args.overrides)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    device = resolve_device(recipe.train.device)
    precision = resolve_precision(recipe.train.precision, device)
    torch.manual_seed(0)
    dim = recipe.features.num_mel_bins
    frames = int(round(recipe.data.crop_seconds * 100))
    batch = recipe.train.batch_size
    x = torch.randn(batch, frames, dim, device=device)
    lengths = torch.full((batch,), frames, device=device)
    labels = torch.randint(0, 375, (batch,), device=device)
    embedder = build_embedder(recipe.model, dim).to(device).train()
    head = build_loss("aam", recipe.model.embed_dim, 375, margin=0.2, scale=30.0).to(device)
    params = [*embedder.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, 1e-4)

    def step() -> None:
        with autocast(device, precision):
            loss, _ = head(embedder(x, lengths).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rows = []
    whole = min(timed(step, args.repeats))
    rows.append({"part": "whole step (model + AAM head + AdamW)", "ms": 1000 * whole, "share": 1.0})
    enc = recipe.model.encoder
    for channels in args.channels:
        sub = Subsampling(dim, enc.d_model, enc.subsampling, channels).to(device).train()

        def sub_step() -> None:
            with autocast(device, precision):
                y, _ = sub(x, lengths)
            y.float().sum().backward()

        ms = 1000 * min(timed(sub_step, args.repeats))
        label = "subsampling conv fwd+bwd, " + f"{channels} channels" + (" (recipe)" if channels ==
                                                                         enc.subsampling_channels else "")
        rows.append({"part": label, "ms": ms, "share": ms / (1000 * whole)})
    print_table(rows, [("part", "part"), ("ms", "ms (best of repeats)"), ("share", "share of the whole step")])
    env = environment()
    print(f"{env['cpu']} ({', '.join(env['cpu_flags'])}), native bf16: {env['native_bf16']}, precision {precision}, "
          f"{torch.get_num_threads()} threads, batch {batch} x {frames} frames")
    write_json("step_profile", {"environment": env, "precision": precision, "batch": batch, "frames": frames,
                                "rows": rows}, args.json)


if __name__ == "__main__":
    main()
