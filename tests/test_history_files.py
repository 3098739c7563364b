"""The History tab's files: listing the outputs folders and deleting to the trash, with
every path a client could send confined to the outputs folder (raw ``..``, absolute
paths, symbolic links out of it, a planted trash link)."""

from __future__ import annotations

import os
import time

import pytest
from PIL import Image

from ui.history_files import ALL_DATES, TRASH, HistoryError, confine, dates, list_images, move_to_trash


def _png(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


@pytest.fixture
def outputs(tmp_path):
    root = tmp_path / "outputs"
    _png(root / "txt2img-images" / "2026-12-01" / "00000-1.png")
    time.sleep(0.01)
    _png(root / "txt2img-images" / "2026-12-02" / "00001-2.png")
    (root / "txt2img-images" / "2026-12-02" / "00001-2.txt").write_text("sidecar")
    _png(root / "img2img-images" / "2026-12-02" / "00000-3.png")
    return root


def test_listing_is_newest_first_by_date_and_skips_links_and_other_files(outputs, tmp_path):
    outside = _png(tmp_path / "secret.png")
    day = outputs / "txt2img-images" / "2026-12-02"
    (day / "link.png").symlink_to(outside)
    (day / "notes.txt").write_text("x")
    (outputs / "txt2img-images" / "2099-01-01").symlink_to(tmp_path)  # a linked "date" folder
    assert dates(outputs, "txt2img-images") == ["2026-12-02", "2026-12-01"]
    listed = [image.relative for image in list_images(outputs, "txt2img-images", ALL_DATES)]
    assert listed == ["txt2img-images/2026-12-02/00001-2.png", "txt2img-images/2026-12-01/00000-1.png"]
    assert [i.relative for i in list_images(outputs, "txt2img-images", "2026-12-01")] == [listed[1]]
    assert list_images(outputs, "extras-images") == []  # not made yet
    with pytest.raises(HistoryError, match="unknown outputs folder"):
        list_images(outputs, "../outside")
    with pytest.raises(HistoryError, match="no date folder"):
        list_images(outputs, "txt2img-images", "../../")


@pytest.mark.parametrize(
    "raw",
    [
        "../secret.png",
        "txt2img-images/../../secret.png",
        "txt2img-images/2026-12-02/../../../secret.png",
        "/etc/passwd",
        "",
        ".",
        "txt2img-images",
        "txt2img-images/2026-12-02/00001-2.txt",
        f"{TRASH}/txt2img-images/2026-12-02/00001-2.png",
        "txt2img-images/2026-12-02/missing.png",
        "a\x00b.png",
    ],
)
def test_paths_outside_the_outputs_or_not_images_are_refused(outputs, tmp_path, raw):
    _png(tmp_path / "secret.png")
    with pytest.raises(HistoryError):
        confine(outputs, raw)
    with pytest.raises(HistoryError):
        move_to_trash(outputs, raw)
    assert (tmp_path / "secret.png").is_file()


def test_symbolic_links_are_refused_even_inside_the_outputs(outputs, tmp_path):
    outside = _png(tmp_path / "secret.png")
    day = outputs / "txt2img-images" / "2026-12-02"
    (day / "out.png").symlink_to(outside)
    (day / "in.png").symlink_to(day / "00001-2.png")
    (outputs / "txt2img-images" / "linked-day").symlink_to(tmp_path)
    for raw in ("txt2img-images/2026-12-02/out.png", "txt2img-images/2026-12-02/in.png",
                "txt2img-images/linked-day/secret.png", str(day / "out.png")):  # fmt: skip
        with pytest.raises(HistoryError, match="symbolic link"):
            move_to_trash(outputs, raw)
    assert outside.is_file() and (day / "00001-2.png").is_file()


def test_delete_moves_the_image_and_its_sidecar_to_the_trash_never_overwriting(outputs):
    relative = "txt2img-images/2026-12-02/00001-2.png"
    original = (outputs / relative).read_bytes()
    moved = move_to_trash(outputs, relative)
    assert moved == outputs.resolve() / TRASH / relative
    assert moved.read_bytes() == original and moved.with_suffix(".txt").read_text() == "sidecar"
    assert not (outputs / relative).exists() and not (outputs / relative).with_suffix(".txt").exists()
    # the same name again (a later image numbered alike): kept beside, not overwritten
    _png(outputs / relative, colour=(0, 0, 255))
    second = move_to_trash(outputs, str(outputs / relative))  # absolute paths inside work too
    assert second != moved and second.parent == moved.parent and moved.read_bytes() == original
    # the trash is not listed as history
    assert all(not i.relative.startswith(TRASH) for i in list_images(outputs, "txt2img-images"))


def test_a_planted_trash_link_is_refused(outputs, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, outputs / TRASH)
    with pytest.raises(HistoryError, match="not a folder"):
        move_to_trash(outputs, "img2img-images/2026-12-02/00000-3.png")
    assert list(elsewhere.iterdir()) == [] and (outputs / "img2img-images/2026-12-02/00000-3.png").is_file()
    # a link one level down inside a real trash folder
    (outputs / TRASH).unlink()
    (outputs / TRASH).mkdir()
    os.symlink(elsewhere, outputs / TRASH / "img2img-images")
    with pytest.raises(HistoryError, match="leads out"):
        move_to_trash(outputs, "img2img-images/2026-12-02/00000-3.png")
    assert list(elsewhere.iterdir()) == []
