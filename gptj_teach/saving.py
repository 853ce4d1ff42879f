"""Writing a checkpoint so that a crash, a full disk or Ctrl-C never costs the checkpoint already there.

``save_pretrained`` writes ``config.json`` and ``model.safetensors``. Written in place, one after the other, a
save killed half-way leaves the new config beside the old weights (or half a weights file): neither the old
model nor the new one loads. So everything is first written into a work folder inside the directory
(``.gptj_teach-saving``), flushed to disk, and only then *renamed* into place: a rename within one file
system is atomic, so a reader sees the old file or the new one, never half of one. The weights are renamed
first, the config last (the window between the two renames is microseconds long; a kill exactly there leaves
new weights beside the old config, which ``load`` refuses when their shapes disagree). Files of another layout
left by an earlier save (a shard index and its shards, ``pytorch_model.bin``) are removed after the renames,
so that no reader, ours or ``transformers``', picks the old weights over the new. A save that fails removes its
work folder; one that was killed (SIGKILL cannot be caught) leaves it, and the next save clears it.

References: POSIX ``rename(2)`` (atomic replacement); ``transformers`` ``PreTrainedModel.save_pretrained``.
"""

import json
import os
import shutil
from pathlib import Path

from safetensors.torch import save_file

from .checks import check_path
from .errors import CheckpointError, InputError

WORK = ".gptj_teach-saving"  # the work folder, inside the checkpoint directory (so renames stay on one disk)
OTHER_LAYOUTS = ("model.safetensors.index.json", "pytorch_model.bin.index.json", "pytorch_model.bin")


def checkpoint_directory(path) -> Path:
    """The directory to save into, created if missing; a clear error when the name is taken by a file."""
    path = check_path(path, "path")
    if path.exists() and not path.is_dir():
        raise InputError(f"path {str(path)!r} is a file: save_pretrained writes a checkpoint *directory*")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_checkpoint(path, config, state: dict) -> Path:
    """Write ``config`` and the tensors of ``state`` as a Hugging Face checkpoint in ``path``, all or nothing."""
    path = checkpoint_directory(path)
    work = path / WORK
    shutil.rmtree(work, ignore_errors=True)  # left by a save that was killed
    work.mkdir()
    try:
        config.save_pretrained(work)
        save_file(state, str(work / "model.safetensors"), metadata={"format": "pt"})
        flush(work / "model.safetensors", work / "config.json")
        publish(work, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def flush(*files: Path) -> None:
    """Make sure the bytes of ``files`` are on the disk (not only in the OS cache) before they are renamed."""
    for file in files:
        with open(file, "rb") as f:
            os.fsync(f.fileno())


def publish(work: Path, path: Path) -> None:
    """Rename the finished files from ``work`` into ``path`` (weights first, config last), then remove the files
    of any other layout, so that the directory holds one checkpoint: the new one."""
    stale = stale_files(path)
    os.replace(work / "model.safetensors", path / "model.safetensors")
    os.replace(work / "config.json", path / "config.json")
    for file in stale:  # the index first: without it the old shards are never read
        file.unlink(missing_ok=True)


def stale_files(path: Path) -> list[Path]:
    """The files of another layout in ``path``: shard indexes, ``pytorch_model.bin``, and the shards an index
    names (an index too damaged to read is removed without its shards)."""
    stale = [path / name for name in OTHER_LAYOUTS if (path / name).exists()]
    for index in [f for f in stale if f.name.endswith(".index.json")]:
        try:
            stale += [path / name for name in shard_names(index) if name != "model.safetensors"]
        except CheckpointError:
            pass
    return stale


def shard_names(index: Path) -> list[str]:
    """The shard files an index names, each a plain file name in the index's own directory (``load`` reads them;
    a save over another layout removes them)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{index} is not a shard index ({type(error).__name__}: {error}): it must be a JSON "
            "object whose 'weight_map' maps tensor names to file names"
        ) from error
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: 'weight_map' must be a non-empty object of tensor name -> file name")
    names = set(weight_map.values())
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{index} names shard {name!r}: shards must be plain file names beside the index")
    return sorted(names)
