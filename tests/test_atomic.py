from __future__ import annotations


def test_atomic_writes_leave_no_temp_file_and_a_readable_mode(tmp_path):
    import os
    import stat

    from lame_tools.atomic import atomic_write_json

    path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
