"""fileio.check_writable checks a symbolic link where write_atomic will write: in the folder of the
file it names, not beside the link (a bench --out link into a missing folder failed only after the run)."""
import os

import pytest

from recoque.errors import WriteFailed
from recoque.fileio import check_writable, write_atomic


def test_a_link_into_a_missing_folder_is_refused_before_anything_runs(tmp_path):
    link = tmp_path / "r.json"
    os.symlink(tmp_path / "gone" / "r.json", link)
    with pytest.raises(WriteFailed, match="does not exist"):
        check_writable(link)


def test_a_link_to_a_writable_place_passes_and_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    link = tmp_path / "r.json"
    os.symlink(tmp_path / "real" / "r.json", link)
    check_writable(link)
    write_atomic(link, "{}")
    assert link.is_symlink() and (tmp_path / "real" / "r.json").read_text() == "{}"
