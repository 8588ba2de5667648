"""Checkpoints: a crash while saving keeps the previous file, loading never runs pickled code,
and a failed load leaves the file untouched."""

import hashlib
import os
import pickle

import pytest
import torch

from ntm_fast.train import checkpoint as ckpt


def _payload(step: int) -> dict:
    return {
        "config": {"task": "copy"},
        "model_config": {"input_size": 3},
        "model": {"w": torch.full((2,), float(step))},
        "optimizer": {},
        "task": {},
        "step": step,
    }


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, _payload(1))
    before = _digest(path)
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        f.write(b"partial bytes")  # the crash happens after part of the file was written
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(path, _payload(2))
    monkeypatch.setattr(torch, "save", real_save)
    assert _digest(path) == before
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "no temp files left"


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_loading_refuses_pickled_objects_and_leaves_the_file_untouched(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    torch.save({**_payload(1), "format": ckpt.FORMAT, "evil": _Evil()}, path, pickle_module=pickle)
    before = _digest(path)
    with pytest.raises(ckpt.CheckpointError, match=str(path)):
        ckpt.load_checkpoint(path)
    assert "pickled code ran" not in capsys.readouterr().out
    assert _digest(path) == before


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX file permissions")
def test_saved_files_get_the_permissions_a_plain_write_would(tmp_path):
    old = os.umask(0o027)
    try:
        path = ckpt.save_checkpoint(tmp_path / "checkpoint.pt", _payload(1))
        assert path.stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600
        assert os.umask(0o027) == 0o027  # the umask was left as it was
        path.chmod(0o604)
        ckpt.save_checkpoint(path, _payload(2))  # a replaced file keeps its own permissions
        assert path.stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)
