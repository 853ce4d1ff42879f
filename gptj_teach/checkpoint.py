"""Reading GPT-J checkpoints in the Hugging Face layout, one tensor at a time (``save_pretrained`` writes them).

A checkpoint directory holds ``config.json`` and the weights in one of four forms: ``model.safetensors``,
sharded ``model-0000k-of-0000n.safetensors`` with ``model.safetensors.index.json``, ``pytorch_model.bin``, or
sharded ``.bin`` files with their index. The real GPT-J 6B in fp16 is one 12.1 GB ``pytorch_model.bin``, more
than the 12.7 GB of RAM of a free Colab machine can hold twice; so the model is first built on the *meta*
device (shapes only, no memory), and then filled from a memory map of each file, one tensor at a time:

- a tensor that already has the dtype and device asked for is used as it is, a view of the file's pages (no
  copy at all: the disk is read when the first forward pass touches the weights);
- any other tensor is converted (to another dtype, or onto the GPU), and the file's pages it was read from are
  handed back to the OS before the next one is read.

The map is private (copy-on-write): training the loaded model changes this process's copy, never the file.
Saving over the file the model was loaded from is safe with ``save_pretrained`` (it writes new files and
renames them, ``saving.py``); writing into that file in place would change or cut the weights under the
running model.

Only safe formats are read: safetensors, or pickles through ``torch.load(weights_only=True)``.

References: ``transformers`` ``PreTrainedModel.from_pretrained`` / ``save_pretrained``; safetensors docs.
"""

import ctypes
import json
import math
import mmap
import os
import pickle
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub as hub
import torch
from huggingface_hub.errors import StrictDataclassError  # what transformers' configs raise for a mistyped field
from tqdm.auto import tqdm
from transformers import GPT2Tokenizer, GPTJConfig

from .api import GPTJForCausalLM, GPTJForQuestionAnswering, GPTJForSequenceClassification, GPTJModel
from .checks import check_config, check_device, check_dtype, check_flag
from .errors import CheckpointError, InputError, InputTypeError
from .gptj.tokenizer import load_tokenizer
from .saving import shard_names

TINY = Path(__file__).parent / "checkpoints" / "tiny"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)  # in transformers' order of preference
PROGRESS_BYTES = 200e6  # show a progress bar for loads above this size
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}  # the format also names C64, F8_E8M0, F6_*, F4: refused by name below
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit for the JSON header
LEGACY_BUFFERS = (".attn.bias", ".attn.masked_bias")  # old checkpoints stored the causal mask; we build it
Model = GPTJForCausalLM | GPTJForSequenceClassification | GPTJForQuestionAnswering | GPTJModel  # what load builds
CLASSES = {
    cls.__name__: cls for cls in (GPTJForCausalLM, GPTJForSequenceClassification, GPTJForQuestionAnswering, GPTJModel)
}


def load(
    name_or_path: str | os.PathLike = "tiny",
    revision: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    cls: type[Model] | str = GPTJForCausalLM,
) -> tuple[Model, GPT2Tokenizer]:
    """Load a GPT-J causal LM and its tokenizer: ``model, tok = load("tiny")``.

    name_or_path: ``"tiny"`` (the checkpoint shipped in the package), a local directory in the Hugging Face
    layout, or a hub id such as ``"EleutherAI/gpt-j-6B"`` (downloaded, needs internet; ``revision="float16"``
    is the 12.1 GB half-precision branch). dtype: default float32. device: default "cpu".
    cls: the class to build (or its name): ``GPTJForCausalLM`` (default), ``GPTJForSequenceClassification``,
    ``GPTJForQuestionAnswering`` (checkpoints saved with that head), or ``GPTJModel`` (the body of any of them).
    Returns (model in eval mode, tokenizer). On the CPU in the file's own dtype, the weights are the file's pages,
    memory-mapped: this returns at once, and the first forward pass reads them from disk.
    """
    cls = CLASSES.get(cls) if isinstance(cls, str) else cls
    if cls not in CLASSES.values():
        raise InputError(f"cls must be one of {', '.join(CLASSES)} (the class or its name), got {cls!r}")
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputTypeError(
            f"name_or_path must be 'tiny', a directory or a hub id (a str or a Path), got {type(name_or_path).__name__}"
        )
    if revision is not None and not isinstance(revision, str):
        raise InputTypeError(f"revision must be a branch, tag or commit name (a str), got {type(revision).__name__}")
    dtype = torch.float32 if dtype is None else check_dtype(dtype)
    device = torch.device("cpu") if device is None else check_device(device)
    progress = None if progress is None else check_flag(progress, "progress")
    directory = resolve(name_or_path, revision)
    model = load_weights(cls, read_config(directory), directory, dtype, device, progress)
    return model.eval(), load_tokenizer()


def resolve(name_or_path: str | os.PathLike, revision: str | None = None) -> Path:
    """The local directory for "tiny", a path, or a hub id (downloading it)."""
    if str(name_or_path) == "tiny":
        if not (TINY / "config.json").exists():
            raise CheckpointError(
                f"the tiny checkpoint is missing from {TINY}: reinstall gptj_teach or run `make tiny`"
            )
        return TINY
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; pass the checkpoint *directory* that holds config.json")
    if HUB_ID.match(str(name_or_path)) and not str(name_or_path).startswith((".", "/", "~")):
        return download(str(name_or_path), revision)
    raise CheckpointError(
        f"no such directory: {path}. Pass 'tiny', a checkpoint directory, or a hub id like 'EleutherAI/gpt-j-6B'"
    )


def download(repo_id: str, revision: str | None = None) -> Path:
    """Fetch config and weights (one format only) from the Hugging Face Hub into its local cache."""

    try:
        files = set(hub.list_repo_files(repo_id, revision=revision))
        weights = next((name for name in WEIGHT_FILES if name in files), None)
        if weights is None:
            raise CheckpointError(f"{repo_id} has none of {', '.join(WEIGHT_FILES)}")
        shards = "*.safetensors" if "safetensors" in weights else "pytorch_model*.bin"
        patterns = ["config.json", weights] + ([shards] if weights.endswith(".index.json") else [])
        return Path(hub.snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except CheckpointError:
        raise
    except Exception as error:  # no network, unknown repository or revision, ...
        raise CheckpointError(
            f"could not download {repo_id!r} (revision {revision!r}) from the Hugging Face Hub: "
            f"{type(error).__name__}: {error}. Check the name and your internet connection, "
            "or pass a local checkpoint directory"
        ) from error


def read_config(directory: Path) -> GPTJConfig:
    """The ``GPTJConfig`` in ``directory/config.json``; refuses other model types."""
    path = Path(directory) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{path} not found: a checkpoint directory needs config.json (save_pretrained writes it)")
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(fields, dict):
        raise CheckpointError(f"{path} must hold a JSON object of settings, got a {type(fields).__name__}")
    if fields.get("model_type") != "gptj":
        raise CheckpointError(f"{path} describes a {fields.get('model_type')!r} model, not GPT-J (model_type 'gptj')")
    try:
        config = GPTJConfig.from_dict(fields)
        check_config(config)
    except (InputError, InputTypeError, StrictDataclassError, TypeError, ValueError) as error:  # a bad field
        raise CheckpointError(f"{path} holds a setting GPT-J cannot use: {error}") from error
    return config


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint, shards in order. Safetensors are read before ``.bin`` (hub repositories
    often ship both, the same weights twice, and ``transformers`` does the same), but a directory holding one
    format both whole and sharded is refused: the two may be different models, and picking one is a guess."""
    present = [name for name in WEIGHT_FILES if (Path(directory) / name).exists()]
    if not present:
        raise CheckpointError(f"no weights in {directory}: expected one of {', '.join(WEIGHT_FILES)}")
    for whole in ("model.safetensors", "pytorch_model.bin"):
        if whole in present and f"{whole}.index.json" in present:
            raise CheckpointError(
                f"{directory} holds {whole} and {whole}.index.json: two checkpoints, whole and "
                "sharded, that may differ. Delete the one you do not want (or save again)"
            )
    path = Path(directory) / present[0]
    if not path.name.endswith(".index.json"):
        return [path]
    shards = [path.parent / name for name in shard_names(path)]
    missing = [shard.name for shard in shards if not shard.exists()]
    if missing:
        raise CheckpointError(
            f"{path} names {len(missing)} shard(s) that are missing, first {missing[0]!r}: "
            "download or save the checkpoint again"
        )
    return shards


def read_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of one weight file, one at a time, so host RAM never holds the whole file."""
    if not path.exists():
        raise CheckpointError(f"{path} is listed in the index but missing: download the checkpoint again")
    try:
        yield from (read_safetensors(path) if path.suffix == ".safetensors" else read_pickle(path))
    except (
        OSError,
        EOFError,
        RuntimeError,
        pickle.UnpicklingError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        zipfile.BadZipFile,
    ) as error:  # what a damaged file (or a pickle that would run code) makes them raise
        raise CheckpointError(
            f"cannot read {path}: {type(error).__name__}: {error}. The file may be truncated or "
            "corrupt (an interrupted download?): delete it and download or save it again"
        ) from error


def read_safetensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """A safetensors file is 8 bytes (little-endian header length), a JSON header (name -> dtype, shape, byte
    offsets) and the raw bytes of every tensor. The file is memory-mapped copy-on-write (the same private map as
    ``torch.load(mmap=True)``), and each tensor is a view of its own bytes: nothing is read from disk until the
    tensor is used, and host RAM never holds a second copy."""
    with open(path, "rb") as f:
        header_length = int.from_bytes(f.read(8), "little")
        data_bytes = os.fstat(f.fileno()).st_size - 8 - header_length
        if header_length > MAX_HEADER_BYTES or data_bytes < 0:
            raise CheckpointError(
                f"{path} is not a safetensors file: its header claims {header_length} bytes "
                f"(the file is truncated, or another format)"
            )
        header = json.loads(f.read(header_length))
        entries = check_safetensors_header(path, header, data_bytes)  # every size checked before any tensor is made
        mapped = torch.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY), dtype=torch.uint8)
    for name, (dtype, shape, start, end) in entries:
        yield name, tensor_from(mapped.untyped_storage(), 8 + header_length + start, end - start, dtype, shape)


def tensor_from(
    storage: torch.UntypedStorage, offset: int, nbytes: int, dtype: torch.dtype, shape: list[int]
) -> torch.Tensor:
    """A tensor of ``nbytes`` bytes of ``storage`` from ``offset``, in its own storage that shares those bytes
    (so ``torch.save`` or ``copy.deepcopy`` of one weight copies that weight, not the whole file)."""
    piece = storage[offset : offset + nbytes]  # shares the bytes, and keeps the map open while it lives
    if offset % dtype.itemsize:  # the format does not promise alignment: copy into new (aligned) memory
        return torch.empty(0, dtype=torch.uint8).set_(piece).clone().view(dtype).view(shape)
    return torch.empty(0, dtype=dtype).set_(piece).view(shape)


def check_safetensors_header(path: Path, header: object, data_bytes: int) -> list:
    """(name, (dtype, shape, start, end)) for each tensor, once every entry is known to fit the file."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header must be a JSON object, got {type(header).__name__}")
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            assert all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in [*shape, start, end])
        except (KeyError, TypeError, ValueError, AssertionError):
            raise CheckpointError(
                f"{path}: the header entry of {name!r} is malformed ({str(info)[:100]}): the file "
                "is corrupt; download or save it again"
            ) from None
        if dtype_name not in SAFETENSORS_DTYPES:
            raise CheckpointError(
                f"{path}: tensor {name!r} is stored as {dtype_name}, a type gptj_teach cannot "
                f"load (it reads {', '.join(SAFETENSORS_DTYPES)}): save it in fp16, bf16 or fp32"
            )
        dtype = SAFETENSORS_DTYPES[dtype_name]
        if end - start != dtype.itemsize * math.prod(shape) or end > data_bytes:
            raise CheckpointError(
                f"{path}: tensor {name!r} claims bytes {start}..{end} for shape {shape} of "
                f"{dtype_name}, but the file holds {data_bytes} data bytes: the file is truncated "
                "or corrupt; download or save it again"
            )
        entries.append((name, (dtype, shape, start, end)))
    return entries


def read_pickle(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """A ``pytorch_model.bin`` (a zip of pickled tensors), memory-mapped and read with weights_only=True: no
    code in the file runs. Files from torch < 1.6 are not zips and cannot be memory-mapped: they are read whole
    (they are small)."""
    state = torch.load(path, map_location="cpu", mmap=is_mapped(path), weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict (tensor name -> tensor)")
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{path} maps {name!r} to a {type(tensor).__name__}: a state dict holds tensors")
        yield name, tensor


def is_mapped(path: Path) -> bool:
    """Whether ``read_tensors`` memory-maps this file: safetensors always, pickles when they are zips."""
    return path.suffix == ".safetensors" or zipfile.is_zipfile(path)


def release_pages(tensor: torch.Tensor) -> None:
    """Let Linux drop the resident pages of a memory-mapped tensor that was copied and not changed (they are
    re-read from the file if touched again). Without this, every page of a 12 GB checkpoint read once stays
    counted in the process's RAM. Only the pages wholly inside the tensor are dropped, never a neighbour's."""
    if sys.platform != "linux" or tensor.nbytes < mmap.PAGESIZE:
        return
    start = -(-tensor.data_ptr() // mmap.PAGESIZE) * mmap.PAGESIZE  # rounded up to a page
    end = (tensor.data_ptr() + tensor.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE  # rounded down
    if end > start:
        ctypes.CDLL(None).madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # 4: MADV_DONTNEED


def load_weights(
    cls: type[Model],
    config: GPTJConfig,
    directory: Path,
    dtype: torch.dtype,
    device: torch.device,
    progress: bool | None = None,
) -> Model:
    """Build ``cls(config)`` on the meta device, then fill it tensor by tensor from ``directory``."""
    with torch.device("meta"):
        model = cls(config)
    expected = dict(model.state_dict())  # name -> meta tensor (shape only)
    files = weight_files(directory)
    total = sum(f.stat().st_size for f in files if f.exists())
    show = progress if progress is not None else total > PROGRESS_BYTES
    with tqdm(total=total, unit="B", unit_scale=True, desc="loading", disable=not show) as bar:
        for path in files:
            mapped = is_mapped(path)
            for name, tensor in read_tensors(path):
                kept = put_tensor(model, expected, name, tensor, dtype, device)
                if mapped and not kept:
                    release_pages(tensor)  # converted: its pages of the file are not needed any more
                bar.update(tensor.nbytes)
    missing = [name for name, t in expected.items() if t.is_meta]
    if missing:
        raise CheckpointError(
            f"{directory} lacks {len(missing)} weights of the model, first {missing[0]!r}: "
            "is it a complete GPT-J causal LM checkpoint?"
        )
    return model


def put_tensor(
    model: torch.nn.Module, expected: dict, name: str, tensor: torch.Tensor, dtype: torch.dtype, device: torch.device
) -> bool:
    """Check one tensor's name and shape against the model, convert it, and put it in place. A tensor that
    already has the wanted dtype and device is put in as it is. Returns whether it was (False: converted)."""
    if name.endswith(LEGACY_BUFFERS):
        return False  # old checkpoints stored the causal mask; ours is built on the fly
    if isinstance(model, GPTJModel) and name.startswith("transformer."):
        name = name.removeprefix("transformer.")  # the body of a checkpoint saved with a head
    elif isinstance(model, GPTJModel) and name.split(".")[0] in ("lm_head", "score", "qa_outputs"):
        return False  # a head: not part of the body
    if name not in expected:
        hint = " (keys of a GPTJModel lack the 'transformer.' prefix)" if f"transformer.{name}" in expected else ""
        raise CheckpointError(
            f"unexpected weight {name!r} in the checkpoint{hint}: was it saved with another head? "
            f"Pass cls= the class it was saved as (config.json's 'architectures')"
        )
    if tuple(tensor.shape) != tuple(expected[name].shape):
        raise CheckpointError(
            f"{name!r} has shape {tuple(tensor.shape)} in the checkpoint but the config asks for "
            f"{tuple(expected[name].shape)}: config.json and the weights do not belong together"
        )
    module_name, _, attr = name.rpartition(".")
    value = tensor.to(device=device, dtype=dtype)  # the tensor itself when nothing changes
    setattr(model.get_submodule(module_name), attr, torch.nn.Parameter(value, requires_grad=value.is_floating_point()))
    expected[name] = value
    return value is tensor
