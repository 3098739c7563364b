"""Render the hook reference (docs/extensions.md's generated part) from the hookspecs,
so the documentation cannot drift from the code (a test compares them)."""

from __future__ import annotations

import inspect

from plugin_api import hookspecs

BEGIN = "<!-- BEGIN GENERATED HOOK REFERENCE: python -m plugin_api.docs -->"
END = "<!-- END GENERATED HOOK REFERENCE -->"


def hook_names() -> list[str]:
    return [
        name
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    ]


def render() -> str:
    parts = [BEGIN, ""]
    for name in hook_names():
        fn = getattr(hookspecs, name)
        signature = str(inspect.signature(fn)).replace("'", "")
        parts += [f"### `{name}{signature}`", "", inspect.getdoc(fn) or "", ""]
    parts.append(END)
    return "\n".join(parts)


def update(path: str = "docs/extensions.md") -> None:
    """Replace the generated section of ``path`` in place."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + render() + tail)


if __name__ == "__main__":
    update()
