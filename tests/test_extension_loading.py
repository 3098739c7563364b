"""The extension manager loads real extension files through the production loader."""

import textwrap

import pytest

from core.config import Settings
from core.host import Host
from plugin_api import API_VERSION, GenerationContext, GenerationRequest


def write(folder, relpath, source):
    path = folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), "utf-8")
    return path


def start_host(tmp_path, ext_dir, **overrides):
    settings = Settings.from_env(data_dir=tmp_path / "data", extension_dirs=[ext_dir], **overrides)
    return Host(settings).start()


def run_transform(host, prompt):
    request = GenerationRequest(prompt=prompt)
    ctx = GenerationContext(request=request, original_prompt=prompt, original_negative_prompt="")
    host.generation_hooks.transform_prompt(request, ctx)
    return request, ctx


@pytest.fixture
def ext_dir(tmp_path):
    folder = tmp_path / "exts"
    folder.mkdir()
    return folder


def test_single_file_and_folder_extensions_load_with_relative_imports(tmp_path, ext_dir):
    write(
        ext_dir,
        "shout.py",
        """
        from plugin_api import hookimpl

        @hookimpl
        def transform_prompt(request):
            request.prompt = request.prompt.upper()
        """,
    )
    write(ext_dir, "suffixer/helpers.py", "SUFFIX = ', masterpiece'\n")
    write(
        ext_dir,
        "suffixer/__init__.py",
        """
        from plugin_api import hookimpl
        from .helpers import SUFFIX

        @hookimpl
        def transform_prompt(request, ctx):
            request.prompt += SUFFIX
        """,
    )
    write(ext_dir, "suffixer/extension.toml", 'version = "1.2.0"\ndescription = "adds a suffix"\n')
    host = start_host(tmp_path, ext_dir)
    records = host.extensions.records
    assert records["shout"].state == "loaded" and records["shout"].source == "user"
    assert records["suffixer"].version == "1.2.0"
    request, ctx = run_transform(host, "a cat")
    # load order is name order: shout, then suffixer
    assert request.prompt == "A CAT, masterpiece"
    assert [t.extension for t in ctx.prompt_transforms] == ["shout", "suffixer"]
    assert ctx.prompt_transforms[0].prompt_before == "a cat"


def test_manifest_order_constraints_override_name_order(tmp_path, ext_dir):
    for name, extra in (("alpha", 'after = ["beta"]\n'), ("beta", "")):
        write(
            ext_dir,
            f"{name}/__init__.py",
            f"""
            from plugin_api import hookimpl

            @hookimpl
            def transform_prompt(request):
                request.prompt += " {name}"
            """,
        )
        write(ext_dir, f"{name}/extension.toml", extra)
    host = start_host(tmp_path, ext_dir)
    request, _ = run_transform(host, "x")
    assert request.prompt == "x beta alpha"


def test_extension_needing_a_newer_api_is_refused(tmp_path, ext_dir):
    write(ext_dir, "future/__init__.py", "raise AssertionError('must not be imported')\n")
    write(ext_dir, "future/extension.toml", 'api = ">=2.0"\n')
    host = start_host(tmp_path, ext_dir)
    record = host.extensions.records["future"]
    assert record.state == "refused"
    assert ">=2.0" in record.error and API_VERSION in record.error


def test_broken_manifest_is_reported_with_the_file(tmp_path, ext_dir):
    write(ext_dir, "badtoml/__init__.py", "")
    write(ext_dir, "badtoml/extension.toml", "version = [unclosed\n")
    host = start_host(tmp_path, ext_dir)
    record = host.extensions.records["badtoml"]
    assert record.state == "failed" and "extension.toml" in record.error


def test_misspelt_hook_is_a_load_error_and_others_still_load(tmp_path, ext_dir):
    write(
        ext_dir,
        "typo.py",
        """
        from plugin_api import hookimpl

        @hookimpl
        def transfrom_prompt(request):
            pass
        """,
    )
    write(
        ext_dir,
        "wrongarg.py",
        """
        from plugin_api import hookimpl

        @hookimpl
        def on_step(ctx, stepp):
            pass
        """,
    )
    write(ext_dir, "fine.py", "from plugin_api import hookimpl\n")
    host = start_host(tmp_path, ext_dir)
    records = host.extensions.records
    assert records["typo"].state == "failed" and "transfrom_prompt" in records["typo"].error
    assert records["wrongarg"].state == "failed" and "stepp" in records["wrongarg"].error
    assert records["fine"].state == "loaded"
    assert not host.extensions.pm.is_registered(records["typo"].module)


def test_import_failures_and_sys_exit_are_isolated(tmp_path, ext_dir):
    write(ext_dir, "crashes.py", "raise RuntimeError('boom at import')\n")
    write(ext_dir, "exits.py", "import sys\nsys.exit(3)\n")
    write(ext_dir, "syntax.py", "def broken(:\n")
    write(
        ext_dir,
        "works.py",
        """
        from plugin_api import hookimpl

        @hookimpl
        def transform_prompt(request):
            request.prompt += "!"
        """,
    )
    host = start_host(tmp_path, ext_dir)
    records = host.extensions.records
    assert "boom at import" in records["crashes"].error
    assert "SystemExit" in records["exits"].error
    assert "SyntaxError" in records["syntax"].error
    assert run_transform(host, "hi")[0].prompt == "hi!"


def test_safe_mode_and_disable(tmp_path, ext_dir):
    write(ext_dir, "one.py", "")
    write(ext_dir, "two.py", "")
    assert "one" not in start_host(tmp_path, ext_dir, safe_mode=True).extensions.records
    host = start_host(tmp_path, ext_dir, disabled_extensions={"one"})
    assert host.extensions.records["one"].state == "disabled"
    assert host.extensions.records["two"].state == "loaded"


def test_disable_persists_across_starts_and_enable_restores(tmp_path, ext_dir):
    write(ext_dir, "one.py", "")
    host = start_host(tmp_path, ext_dir)
    host.extensions.set_enabled("one", False)
    assert start_host(tmp_path, ext_dir).extensions.records["one"].state == "disabled"
    host.extensions.set_enabled("one", True)
    assert start_host(tmp_path, ext_dir).extensions.records["one"].state == "loaded"
    with pytest.raises(KeyError, match="no extension named 'nope'"):
        host.extensions.set_enabled("nope", False)


def test_duplicate_names_keep_the_first(tmp_path, ext_dir):
    other = tmp_path / "other"
    write(ext_dir, "same.py", "ORIGIN = 'first'\n")
    write(other, "same.py", "ORIGIN = 'second'\n")
    settings = Settings.from_env(data_dir=tmp_path / "d", extension_dirs=[ext_dir, other])
    host = Host(settings).start()
    assert host.extensions.records["same"].module.ORIGIN == "first"
    dupes = [r for r in host.extensions.records.values() if r.name == "same" and r.state == "failed"]
    assert dupes and "already used" in dupes[0].error


def test_entry_point_extensions_are_discovered(tmp_path, ext_dir, monkeypatch):
    import importlib.metadata
    import sys

    pkg = tmp_path / "site" / "ep_ext"
    write(
        pkg.parent,
        "ep_ext/__init__.py",
        "from plugin_api import hookimpl\n\n@hookimpl\ndef transform_prompt(request):\n    request.prompt += ' ep'\n",
    )
    dist = tmp_path / "site" / "ep_ext-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-ext\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text("[easel.extensions]\nep_ext = ep_ext\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    host = start_host(tmp_path, ext_dir)
    record = host.extensions.records["ep_ext"]
    assert record.source == "entry-point" and record.version == "0.3.0"
    assert run_transform(host, "x")[0].prompt == "x ep"
    sys.modules.pop("ep_ext", None)


def test_a_quarantined_extension_is_shown_in_the_extensions_tab_and_enable_lifts_it(make_host, tmp_path):
    """Strikes (crashes or hangs, issue #23 point 10) up to the limit quarantine an
    extension from the next start; the WebUI's Extensions tab shows it with the reason and
    its Enable lifts it, through the same manager as `easel extensions enable`."""
    from ui.extensions_tab import extension_rows, set_enabled

    folder = tmp_path / "exts"
    folder.mkdir()
    (folder / "flaky.py").write_text("from plugin_api import hookimpl\n")
    data_dir = tmp_path / "data"
    first = make_host(data_dir=data_dir, safe_mode=False, extension_dirs=[folder], extension_crash_limit=2)
    assert first.extensions.strike("flaky", "on_step", "job-1", "killed the process in") is False
    assert first.extensions.strike("flaky", "on_step", "job-2", "killed the process in") is True
    first.stop()

    second = make_host(data_dir=data_dir, safe_mode=False, extension_dirs=[folder], extension_crash_limit=2)
    [row] = [r for r in extension_rows(second) if r[0] == "flaky"]
    assert row[1] == "quarantined" and "killed the process in on_step (job job-2)" in row[6]
    assert "flaky" not in {r.name for r in second.extensions.loaded()}
    assert "enabled" in set_enabled(second, "flaky", True)
    second.stop()
    third = make_host(data_dir=data_dir, safe_mode=False, extension_dirs=[folder], extension_crash_limit=2)
    assert third.extensions.records["flaky"].state == "loaded"
    third.stop()
