"""A model folder from a resume checkpoint: the weights of one training step (or the weight average
the checkpoint keeps with `ema_decay`), saved like the run's final model so that `eval` and the probes
can read them. For asking how much a score moves over a run's last steps, or what the average buys
over the weights it averages, on the same run.

    .venv/bin/python scripts/checkpoint_model.py runs/see/RUN/ckpt/step-00000600 runs/see/RUN/model \
        --out runs/see/RUN/model-step600            # the last step's own weights
    .venv/bin/python scripts/checkpoint_model.py runs/see/RUN/ckpt/step-00000500 runs/see/RUN/model \
        --tensors ema --out runs/see/RUN/model-ema500  # the average as it stood at step 500

The checkpoint is verified against its manifest first; the model folder gives the architecture,
processor and training.json (which gains "from_checkpoint"). Nothing is unpickled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from safetensors.torch import load_file  # noqa: E402

from lame_tools.checkpoint import load_extra_tensors, verify_checkpoint  # noqa: E402
from lame_tools.errors import LameError  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402


def checkpoint_model(checkpoint: Path, model_dir: Path, out: Path, tensors: str = "model") -> Path:
    """Write `out`: the model of `model_dir` with the weights of `checkpoint` (its `model.safetensors`,
    or the extra tensors saved under `tensors`)."""
    problem = verify_checkpoint(checkpoint)
    if problem is not None:
        raise LameError(problem + ".")
    if tensors == "model":
        weights = load_file(str(checkpoint / "model.safetensors"))
    else:
        weights = load_extra_tensors(checkpoint, tensors)
        if weights is None:
            raise LameError(f"checkpoint {checkpoint} holds no {tensors!r} tensors (was the run trained with ema_decay?).")
        weights.pop("n_averaged", None)
    model = LameModel.from_pretrained(model_dir, device="cpu")
    own = model.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise LameError(f"checkpoint {checkpoint} does not match the model in {model_dir} (e.g. {unknown[0]}).")
    missing = sorted({name for name, _ in model.named_parameters()} - set(weights))
    if missing:  # buffers may be absent (a weight average holds parameters only): they stay the model's
        raise LameError(f"the {tensors!r} tensors of {checkpoint} lack weights of the model (e.g. {missing[0]}).")
    model.load_state_dict(weights, strict=False)
    info = {**model.training_info, "from_checkpoint": str(checkpoint), "checkpoint_tensors": tensors}
    return model.save_pretrained(out, training_info=info)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint folder, e.g. runs/see/RUN/ckpt/step-00000600")
    parser.add_argument("model", type=Path, help="the run's model folder (architecture, processor, training.json)")
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write")
    parser.add_argument("--tensors", default="model", help='"model" (the step\'s weights) or an extra set, e.g. "ema"')
    args = parser.parse_args(argv)
    try:
        print(checkpoint_model(args.checkpoint, args.model, args.out, args.tensors))
    except LameError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
