"""Image-file listing/expansion and atomic writes."""

from __future__ import annotations

import pytest

from jaxgen.atomic_file import write_atomic, write_text_atomic
from jaxgen.image import expand_image_inputs, list_image_files


def test_list_and_expand_image_inputs(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.PNG", "a.jpg", ".hidden.png", "notes.txt"):
        (folder / name).write_bytes(b"x")
    single = tmp_path / "z.png"
    single.write_bytes(b"x")
    assert [p.name for p in list_image_files(folder)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in expand_image_inputs([str(single), str(folder)])] == ["z.png", "a.jpg", "b.PNG"]
    with pytest.raises(ValueError, match=r"content .*nope.png: no such file or folder"):
        expand_image_inputs([str(tmp_path / "nope.png")], "content")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="style folder .*empty has no image files"):
        expand_image_inputs([str(tmp_path / "empty")], "style")


def test_atomic_writes_replace_whole_files_and_clean_up_on_failure(tmp_path):
    path = tmp_path / "sub" / "f.json"
    write_text_atomic(path, "first")
    write_text_atomic(path, "second")
    assert path.read_text() == "second"

    def broken(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, broken)
    assert path.read_text() == "second"  # the old file is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]  # no temporary file left
