"""Load a causal LM by HF name or local folder, as loaded, with its architecture card.

The model is never modified (no weight folding, no re-implementation): what
predictors read through `bench.trace` is what `bench.evaluate` scores.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from ..process import MIN_ROWS, reproducible_mkl_branch  # MIN_ROWS: the fewest rows multiplied at once (why: there)
from .card import ArchitectureCard, read_card


DEFAULT_MODEL = "default"
DEFAULT_MODEL_PATH = Path(__file__).parent.parent / "default_model"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelLoadError(UserError):
    pass


class _PaddingWarningFilter(logging.Filter):
    """We always pass attention masks; transformers still warns when a model *predicts* its
    pad token during generation. Drop that one message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "attention_mask" not in record.getMessage()


@dataclass(frozen=True)
class ModelSpec:
    """How to load a model; the CLI and the Python API share it."""

    name_or_path: str = DEFAULT_MODEL
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # Spread the weights over the visible devices as they load (accelerate): "auto", "balanced",
    # "balanced_low_0", "sequential", or one device ("cuda:1"). None: all on `device`.
    device_map: str | None = None


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def resolve(name_or_path: str) -> tuple[str, bool]:
    """Return (what to pass to from_pretrained, whether it is a local folder or GGUF file)."""
    if name_or_path == DEFAULT_MODEL:
        return str(DEFAULT_MODEL_PATH), True
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_file() and path.suffix.lower() == ".gguf":
            return str(path), True
        if not path.is_dir():
            raise ModelLoadError(f"{name_or_path} is a file: pass a model folder (with config.json), a .gguf file "
                                 "or a HF model name")
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return str(ggufs[0]), True
            if ggufs:
                raise ModelLoadError(f"{name_or_path} holds {len(ggufs)} .gguf files: pass the one to load "
                                     f"(e.g. {ggufs[0]})")
            raise ModelLoadError(f"no config.json in {name_or_path}: pass a folder saved with save_pretrained, "
                                 "a .gguf file or a HF model name")
        return str(path), True
    if name_or_path.startswith((".", "/", "~")) or not _HUB_ID.match(name_or_path):
        raise ModelLoadError(f"no model at {name_or_path}: pass a HF model name, a folder with config.json "
                             "or a .gguf file")
    return name_or_path, False


def gguf_parts(source: str) -> tuple[str, dict[str, Any]] | None:
    """For a GGUF file: (its folder, the `gguf_file` keyword transformers loads it with); else None.
    transformers reads the tokenizer and config from the file and dequantizes its weights to floats."""
    path = Path(source)
    if path.suffix.lower() != ".gguf":
        return None
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelLoadError(f"loading a .gguf file needs {' and '.join(missing)}: pip install 'brittlebench[gguf]'")
    return str(path.parent), {"gguf_file": path.name}


def input_device(model: Any):
    """Where inputs go: the input embedding's device (under a device map, the first shard's)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    return weight.device if weight is not None else next(model.parameters()).device


class ModelHandle:
    """A loaded model and tokenizer. Build with `load_model`."""

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, source: str):
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self._ids: dict[tuple[str, bool], list[int]] = {}

    def token_ids(self, texts: Sequence[str], special: bool = True) -> list[list[int]]:
        """Each text's token ids (with the tokenizer's special tokens unless `special` is False),
        tokenized once per handle: a run tokenizes the same prompts for its checks, its trace and
        its evaluation. New texts are tokenized in one batched call."""
        new = [t for t in dict.fromkeys(texts) if (t, special) not in self._ids]
        if new:
            encoded = self.tokenizer(new, add_special_tokens=special, return_attention_mask=False,
                                     return_token_type_ids=False)["input_ids"]  # the ids only: 3x less to convert
            for text, ids in zip(new, encoded):
                self._ids[text, special] = ids
        return [self._ids[t, special] for t in texts]

    @property
    def device(self):
        return input_device(self.model)

    @cached_property
    def card(self) -> ArchitectureCard:
        return read_card(self.model, self.tokenizer)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over config, every weight tensor as loaded, and the revision."""
        h = hashlib.sha256()
        config = {k: v for k, v in self.model.config.to_dict().items()
                  if not k.startswith("_") and k != "transformers_version"}  # where it was loaded from is not what it is
        h.update(json.dumps(config, sort_keys=True, default=str).encode())
        h.update(str(self.spec.revision).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(__import__("torch").uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    @cached_property
    def numerics(self) -> str:
        """What a forward pass's last bits depend on besides the weights and the input: torch's
        version, where the model runs and, on a CPU, MKL's reproducibility branch (MKL_CBWR)."""
        import torch

        device = self.device
        where = device.type
        if device.type == "cuda":
            where += f" ({torch.cuda.get_device_name(device)})"
        elif device.type == "cpu":
            where += f" (MKL_CBWR={os.environ.get('MKL_CBWR', '')})"
        mapped = getattr(self.model, "hf_device_map", None)
        if mapped:
            where += f", device map over {', '.join(sorted({str(d) for d in mapped.values()}))}"
        return f"torch {torch.__version__}, {where}"

    @property
    def cache_name(self) -> str:
        """The trace cache's folder for this model as it runs here: its fingerprint, its numerics and
        the trace's own version (a trace computed under other numerics, or by a trace that computes a
        site another way, differs in the last bits, so it is not reused)."""
        key = f"{self.numerics}\x00trace {TRACE_VERSION}"
        return f"{self.fingerprint}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    @cached_property
    def stop_token_ids(self) -> list[int]:
        """Tokens that end an answer: EOS, and a newline where it is one token."""
        ids = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        newline = self.tokenizer("\n", add_special_tokens=False)["input_ids"]
        if len(newline) == 1 and newline[0] not in ids:
            ids.append(newline[0])
        return ids

    def __repr__(self) -> str:
        return f"ModelHandle({self.spec.name_or_path!r}, fingerprint={self.fingerprint})"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection attempt, so that a hub name fails in seconds, not after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _step(spec: ModelSpec, where: str, what: str, load: Any) -> Any:
    """Run one loading step, turning its failure into a one-line ModelLoadError."""
    try:
        return load()
    except ValueError as e:
        text = str(e)
        if "trust_remote_code" in text:
            raise ModelLoadError(f"{spec.name_or_path} needs its own code from the model repo: "
                                 "pass --trust-remote-code if you trust it") from None
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise ModelLoadError(f"cannot load the {what} of {spec.name_or_path}: {first}") from None
    except ImportError as e:
        raise ModelLoadError(f"loading {spec.name_or_path} this way needs another package: {e} "
                             "(device 'auto' needs: pip install accelerate)") from None
    except (OSError, KeyError) as e:
        text = str(e).strip()
        if "safetensors" in text.lower() and not spec.allow_pickle:
            raise ModelLoadError(f"{spec.name_or_path} has no safetensors weights{where}: pass --allow-pickle "
                                 "if you trust its pickle weights") from None
        first = text.splitlines()[0] if text else type(e).__name__
        raise ModelLoadError(f"cannot load the {what} of {spec.name_or_path!r}{where}: {first}") from None


#: Bumped when the trace (`bench.model.trace`) computes a stored site another way, even in the last
#: bits: the trace cache (`ModelHandle.cache_name`) keeps traces of other versions apart.
#: 2: the logit lens pooled across batches (`PooledLens`, `lens_reduce`).
TRACE_VERSION = 2


def rows_are_batch_invariant(width: int = 128) -> bool:
    """Whether a block of MIN_ROWS rows of a batched float32 product equals those rows computed alone
    on this machine (it does not where torch's MKL was called before MKL_CBWR was set, on some CPUs)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, width, generator=generator)
    w = torch.randn(width, 4 * width, generator=generator)
    return bool(torch.equal((x @ w)[:MIN_ROWS], x[:MIN_ROWS] @ w))


@contextlib.contextmanager
def eager_attention(model):
    """Eager attention for the body (fused kernels return no attention weights), the model's own after."""
    before = getattr(model.config, "_attn_implementation", None)
    if before == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before:
            model.set_attn_implementation(before)


def device_map_of(spec: ModelSpec) -> str | None:
    """What `from_pretrained` gets as `device_map`, checked: a ModelLoadError says what to change."""
    device_map = spec.device_map
    if device_map is None:
        return "auto" if spec.device == "auto" else None
    if device_map not in DEVICE_MAPS and not re.fullmatch(r"(cpu|cuda|mps|xpu|npu|hpu)(:\d+)?", device_map):
        raise ModelLoadError(f"unknown device map {device_map!r}: use {', '.join(DEVICE_MAPS)} or one device "
                             "(cuda:1)")
    if spec.device not in ("cpu", "auto"):
        raise ModelLoadError(f"--device {spec.device} and --device-map {device_map} both place the model: "
                             "pass one of them")
    if importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError(f"--device-map {device_map} needs accelerate: pip install accelerate")
    return device_map


def load_model(spec: ModelSpec | str = DEFAULT_MODEL) -> ModelHandle:
    if isinstance(spec, str):
        spec = ModelSpec(spec)
    source, local = resolve(spec.name_or_path)
    device_map = device_map_of(spec)
    import torch
    from huggingface_hub import try_to_load_from_cache
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    logger = hf_logging.get_logger("transformers.modeling_utils")  # where the warning is raised
    if not any(isinstance(f, _PaddingWarningFilter) for f in logger.filters):
        logger.addFilter(_PaddingWarningFilter())

    gguf = gguf_parts(source)
    if gguf is None and local and not any(Path(source).glob("*.safetensors")):
        pickled = [p.name for p in Path(source).glob("*.bin")] + [p.name for p in Path(source).glob("*.pt")]
        if not pickled:
            raise ModelLoadError(f"no weights (*.safetensors or *.bin) in {source}: save the model there with save_pretrained")
        if not spec.allow_pickle:
            raise ModelLoadError(f"weights in {source} are pickle only ({pickled[0]}), which can run code when loaded: "
                                 "pass --allow-pickle if you trust them, or convert them to safetensors")
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "auto": "auto"}.get(spec.dtype)
    if dtype is None:
        raise ModelLoadError(f"unknown dtype {spec.dtype!r}: use float32, float16, bfloat16 or auto")
    kwargs: dict[str, Any] = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    folder, extra = gguf if gguf is not None else (source, {})  # a GGUF file: dequantized to `dtype` as it loads
    where = "" if local else " (not in the local HF cache, and the hub cannot be reached here)"
    if not local and not isinstance(try_to_load_from_cache(source, "config.json", revision=spec.revision), str) \
            and not _hub_reachable():
        raise ModelLoadError(f"model {spec.name_or_path!r} is not in the local HF cache and the hub cannot be reached: "
                             "pass a folder with config.json, or download the model where the hub is reachable")

    def parts(folder: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
        config = _step(spec, where, "config", lambda: AutoConfig.from_pretrained(folder, **kwargs))
        tokenizer = _step(spec, where, "tokenizer", lambda: AutoTokenizer.from_pretrained(folder, **kwargs))
        if len(tokenizer) < 2 or not tokenizer("1+1=", add_special_tokens=False)["input_ids"]:
            # transformers builds an empty tokenizer when the files are missing, and it encodes text to nothing
            raise ModelLoadError(f"cannot load the tokenizer of {spec.name_or_path}: no usable tokenizer files there "
                                 "(save it with tokenizer.save_pretrained into the model folder)")
        safetensors_only = not (spec.allow_pickle or "gguf_file" in kwargs)
        model = _step(spec, where, "weights", lambda: AutoModelForCausalLM.from_pretrained(
            folder, config=config, dtype=dtype, use_safetensors=True if safetensors_only else None, device_map=device_map,
            **kwargs))
        return tokenizer, model

    loaded = None
    if gguf is not None:  # load once: the dequantized weights as a plain folder, after the first time
        from . import gguf_cache

        digest = gguf_cache.file_digest(source)
        cached = gguf_cache.lookup(digest, spec.dtype)
        if cached is not None:
            try:
                loaded = parts(str(cached), kwargs)
            except Exception as e:  # noqa: BLE001 - an unreadable entry is a miss
                gguf_cache.warn(f"the cached weights of {Path(source).name} could not be read "
                                f"({type(e).__name__}); dequantizing the file again")
    if loaded is None:
        loaded = parts(folder, kwargs | extra)
        if gguf is not None:
            gguf_cache.store(loaded[1], loaded[0], digest, spec.dtype, source)
    tokenizer, model = loaded
    if device_map is None and spec.device not in ("auto", "cpu"):
        try:
            model.to(spec.device)
        except (RuntimeError, AssertionError) as e:
            raise ModelLoadError(f"cannot move the model to device {spec.device!r}: {e}") from None
    if input_device(model).type == "cpu" and not rows_are_batch_invariant():
        warnings.warn("on this machine a batched product's rows differ from the rows computed alone, so traces "
                      f"may differ in the last bits between batch sizes: set MKL_CBWR={reproducible_mkl_branch()} in the "
                      "environment before Python starts", stacklevel=2)
    model.eval()
    model.requires_grad_(False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return ModelHandle(spec, model, tokenizer, source)
