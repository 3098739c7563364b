"""Fire the WebUI's own events over HTTP the way its page does, reading the event's
inputs and outputs from the app's ``/config`` (components by ``elem_id``) instead of
hard-coding positions or handler parameter names, so a new input in the form (a mode, a
form section, a script's controls) does not break the tests that call the event.

- ``event_inputs``: the event's data list: each input from ``values`` (keyed by the
  component's ``elem_id``) or the component's value as the page first shows it (what an
  untouched control sends). A key that is no input of the event is an error, so a
  renamed ``elem_id`` fails here instead of silently sending the default.
- ``select_tab``: fires a tab's ``select`` event in a session, as a click on the tab does
  (the img2img mode tabs set the mode, a ``gr.State`` that only a session carries).
- ``output_value``: an event's output by ``elem_id``, unwrapped from ``gr.update(...)``.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import gradio_call


def _config(client: httpx.Client) -> dict[str, Any]:
    return client.get("/config").json()


def _dependency(config: dict[str, Any], api_name: str) -> dict[str, Any]:
    for dependency in config["dependencies"]:
        if dependency.get("api_name") == api_name:
            return dependency
    raise AssertionError(f"the WebUI has no event named {api_name!r}")


def _components(config: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {component["id"]: component for component in config["components"]}


def event_inputs(client: httpx.Client, api_name: str, values: dict[str, Any]) -> list[Any]:
    """The data list of event ``api_name``, in its inputs' order: ``values[elem_id]`` or
    the component's initial value. State inputs get None (Gradio takes them from the
    session, as for the page)."""
    config = _config(client)
    components = _components(config)
    data, used = [], set()
    for component_id in _dependency(config, api_name)["inputs"]:
        component = components[component_id]
        props = component.get("props", {})
        elem_id = props.get("elem_id")
        if component.get("type") == "state":
            data.append(None)
        elif elem_id in values:
            data.append(values[elem_id])
            used.add(elem_id)
        else:
            data.append(props.get("value"))
    unknown = sorted(set(values) - used)
    assert not unknown, f"{api_name} has no input with elem_id {unknown}"
    return data


def select_tab(client: httpx.Client, elem_id: str, session_hash: str) -> None:
    """Fire the ``select`` event of the tab ``elem_id`` in session ``session_hash``."""
    config = _config(client)
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    assert len(ids) == 1, f"{len(ids)} components with elem_id {elem_id!r}"
    for dependency in config["dependencies"]:
        if [ids[0], "select"] in dependency["targets"]:
            outputs = gradio_call(client, dependency["api_name"], [], session_hash=session_hash)
            assert isinstance(outputs, list), outputs
            return
    raise AssertionError(f"the tab {elem_id!r} has no select event")


def output_value(client: httpx.Client, api_name: str, outputs: list[Any], elem_id: str) -> Any:
    """The value event ``api_name`` gave the component ``elem_id`` (``outputs`` as
    ``gradio_call`` returns them); a ``gr.update`` is unwrapped to its value."""
    config = _config(client)
    components = _components(config)
    output_ids = _dependency(config, api_name)["outputs"]
    assert isinstance(outputs, list) and len(outputs) == len(output_ids), outputs
    for component_id, value in zip(output_ids, outputs, strict=True):
        if components[component_id].get("props", {}).get("elem_id") == elem_id:
            if isinstance(value, dict) and value.get("__type__") == "update":
                return value.get("value")
            return value
    raise AssertionError(f"{api_name} has no output with elem_id {elem_id!r}")
