"""plugin_api.paths, the one check that confines user-supplied names to their folder:
every way out (``..``, absolute paths, symlinks, the folder itself, control characters,
blanks) is refused with a message naming the field, and every way in is resolved."""

from __future__ import annotations

import os

import pytest

from plugin_api.paths import UnsafePathError, confine, is_plain_name, refuse_control_characters


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "data"
    (folder / "styles").mkdir(parents=True)
    (folder / "styles" / "a.csv").write_text("x")
    (tmp_path / "secret.txt").write_text("no")
    return folder


@pytest.mark.parametrize("value", ["styles/a.csv", "styles/../styles/a.csv", "./styles/a.csv", "new.csv"])
def test_values_inside_resolve_inside(root, value):
    assert confine(root, value, "styles file") == (root / value).resolve()


def test_an_absolute_path_inside_the_folder_is_accepted(root):
    assert confine(root, str(root / "styles" / "a.csv"), "f") == (root / "styles" / "a.csv").resolve()


@pytest.mark.parametrize(
    "value", ["../secret.txt", "styles/../../secret.txt", "/etc/passwd", "..", ".", "styles/..", "./"]
)
def test_ways_out_and_the_folder_itself_are_refused_naming_the_field(root, value):
    with pytest.raises(UnsafePathError) as error:
        confine(root, value, "styles file")
    message = str(error.value)
    assert message == f"styles file must name something inside {root.resolve()}, not {value!r}"


def test_a_symlink_inside_that_points_out_is_refused(root, tmp_path):
    os.symlink(tmp_path / "secret.txt", root / "link.txt")
    os.symlink(tmp_path, root / "up")
    for value in ("link.txt", "up/secret.txt"):
        with pytest.raises(UnsafePathError, match="must name something inside"):
            confine(root, value, "f")
    # a symlink that stays inside is followed to its real place
    os.symlink(root / "styles", root / "alias")
    assert confine(root, "alias/a.csv", "f") == (root / "styles" / "a.csv").resolve()


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_values_are_refused(root, value):
    with pytest.raises(UnsafePathError) as error:
        confine(root, value, "styles file")
    assert str(error.value) == "styles file is empty"


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("a\x00.png", "\x00"),
        ("a\nb", "\n"),
        ("x\x1f", "\x1f"),
        ("x\x7f", "\x7f"),
        ("x\x85", "\x85"),
        ("\x9f", "\x9f"),
    ],
)
def test_control_characters_are_refused_and_shown(root, value, found):
    with pytest.raises(UnsafePathError) as error:
        confine(root, value, "name")
    assert str(error.value) == f"name must not contain control characters (found {found!r})"
    with pytest.raises(UnsafePathError):
        refuse_control_characters(value, "name")


@pytest.mark.parametrize("value", ["a b", "ü.png", "x\x20y", "~", "\xa0"])
def test_printable_characters_are_not_control_characters(value):
    refuse_control_characters(value, "name")  # no error


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ("a.png", True),
        ("..a", True),
        ("a..", True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("/a", False),
        ("a\\b", False),
        ("a\x00", False),
        ("a\x9f", False),
    ],
)
def test_plain_names(value, plain):
    assert is_plain_name(value) is plain


def test_the_error_is_a_value_error():
    assert issubclass(UnsafePathError, ValueError)
