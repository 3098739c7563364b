"""Scripts: A1111's selectable scripts (``script_name`` + ``script_args``), which run one
request as several generations in one job (the bundled X/Y/Z plot).

Extensions register a ``ScriptSpec`` (``register_scripts``); the engine hands a request
that names one to ``validate_script`` (at submit, and when its job starts) and
``run_script`` (in the worker). The script makes each generation through
``ScriptContext.generate``, which is the engine's ordinary ``generate``: every hook runs,
every image is saved with its own infotext, exactly as if the generation had been queued
alone. One job per script run, not one per generation, because the result (a grid) needs
every generation, a cancel must stop the whole run, the progress bar is one, and A1111's
``/sdapi/v1/txt2img`` answers a script request with one response.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import RequestError
from core.prompt_stage import user_settings
from core.results import CancelToken, GenerationResult, ProgressEvent
from core.saving.output_settings import OutputOptions
from core.saving.writer import save_grid
from plugin_api.errors import InvalidRequest
from plugin_api.types import GenerationRequest, ScriptContext, ScriptSpec

log = logging.getLogger("easel.scripts")


def find_script(host: Any, request: GenerationRequest) -> tuple[ScriptSpec, dict[str, Any]] | None:
    """The script a request names with its arguments by name, or None for an ordinary
    request; RequestError naming ``script_name`` / ``script_args`` for a bad one."""
    name = request.script_name
    if name is None or name == "":
        return None
    if not isinstance(name, str):
        raise RequestError("script_name", f"must be a script's name, got {name!r}")
    registry = getattr(host, "scripts", None)
    spec = registry.get(name) if registry is not None else None
    if spec is None:
        known = ", ".join(sorted(s.name for s in registry or [])) or "none"
        raise RequestError("script_name", f"no script named {name!r}; available: {known}")
    mode = "img2img" if request.mode != "txt2img" else "txt2img"
    if mode not in spec.modes:
        raise RequestError("script_name", f"script {spec.name!r} does not run {mode} requests")
    return spec, named_args(spec, request.script_args)


def named_args(spec: ScriptSpec, raw: Any) -> dict[str, Any]:
    """A1111's positional list by ``spec.arg_names``, or a dict of names, as one dict."""
    if raw is None:
        return {}
    if isinstance(raw, list | tuple):
        if spec.arg_names and len(raw) > len(spec.arg_names):
            raise RequestError(
                "script_args",
                f"{spec.name!r} takes at most {len(spec.arg_names)} values "
                f"({', '.join(spec.arg_names)}), got {len(raw)}",
            )
        return dict(zip(spec.arg_names, raw, strict=False))
    if isinstance(raw, dict):
        for key in raw:
            if not isinstance(key, str) or (spec.arg_names and key not in spec.arg_names):
                raise RequestError(
                    f"script_args.{key}",
                    f"{spec.name!r} has no argument {key!r}; it takes {', '.join(spec.arg_names)}",
                )
        return dict(raw)
    raise RequestError("script_args", f"expected a list or an object, got {type(raw).__name__}")


def without_script(request: GenerationRequest) -> GenerationRequest:
    """The request as one ordinary generation (what a script's generations start from)."""
    return dataclasses.replace(request, script_name=None, script_args=[])


class ScriptRun:
    """One script request in the engine: builds the ``ScriptContext`` and runs the script."""

    def __init__(
        self,
        engine: Any,
        request: GenerationRequest,
        spec: ScriptSpec,
        args: dict[str, Any],
        *,
        job_id: str | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        self.engine = engine
        self.request = request
        self.spec = spec
        self.args = args
        self.job_id = job_id
        self.on_progress = on_progress
        self.cancel = cancel or CancelToken()
        self.cell_jobs: list[str] = []

    def context(self) -> ScriptContext:
        host = self.engine.host
        return ScriptContext(
            generate=self.generate,
            check=self.check,
            save_grid=self.save_grid,
            is_cancelled=lambda: self.cancel.interrupted,
            settings=user_settings(host),
            job_id=self.job_id,
        )

    def check(self, request: GenerationRequest) -> GenerationRequest:
        if not isinstance(request, GenerationRequest):
            raise RequestError(
                "script_name", f"{self.spec.name!r} checked {request!r}, not a GenerationRequest"
            )
        return self.engine.validate(without_script(request))

    def validate(self) -> None:
        if self.spec.validate is None:
            return
        try:
            self.spec.validate(self.request, dict(self.args), self.context())
        except RequestError:
            raise
        except InvalidRequest as exc:  # the script's own refusal: the host's error, same field
            raise RequestError(exc.field, exc.message) from exc

    def run(self) -> GenerationResult:
        try:
            result = self.spec.run(self.request, dict(self.args), self.context())
        except InvalidRequest as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError(exc.field, exc.message) from exc
        finally:
            self._forget_cells()
        if not isinstance(result, GenerationResult):
            raise RuntimeError(
                f"script {self.spec.name!r} returned {type(result).__name__}, not a GenerationResult"
            )
        if self.cancel.interrupted:
            result.interrupted = True
        return result

    def generate(self, request: GenerationRequest, part: int = 0, parts: int = 1) -> GenerationResult:
        """One generation of the script, with progress as A1111's ``job_no``/``job_count``."""
        if not isinstance(request, GenerationRequest):
            raise RequestError(
                "script_name", f"{self.spec.name!r} generated {request!r}, not a GenerationRequest"
            )
        if self.cancel.interrupted:
            return GenerationResult(images=[], seeds=[], infotexts=[], interrupted=True)
        part, parts = max(0, int(part)), max(1, int(parts))
        # its own id for the image journal and the job's image names (core/saving/journal.py):
        # numbered in call order, so a retried job's n-th generation finds the images its
        # n-th wrote before a crash, and two generations never share one
        cell_job = f"{self.job_id}-{len(self.cell_jobs)}" if self.job_id else None
        if cell_job is not None:
            self.cell_jobs.append(cell_job)

        def progress(event: ProgressEvent) -> None:
            if self.on_progress is None:
                return
            per_cell = event.elapsed_s + event.eta_s  # this generation's whole time, estimated
            self.on_progress(
                ProgressEvent(
                    event.step,
                    event.total_steps,
                    part * event.batch_count + event.batch_index,
                    parts * event.batch_count,
                    event.elapsed_s,
                    event.eta_s + per_cell * (parts - part - 1),
                    event.preview,
                )
            )

        return self.engine.generate(
            without_script(request), job_id=cell_job, on_progress=progress, cancel=self.cancel
        )

    def save_grid(
        self,
        image: Any,
        infotext: str,
        seed: int,
        basename: str = "grid",
    ) -> str | None:
        if not self.request.save_images:
            return None
        mode = "txt2img" if self.request.init_image is None else "img2img"
        try:
            path = save_grid(
                image,
                Path(self.engine.outputs_dir),
                mode,
                basename,
                seed,
                str(infotext),
                self.request.output_format,
                options=OutputOptions.from_settings(user_settings(self.engine.host)),
            )
        except ValueError as exc:
            raise RuntimeError(f"script {self.spec.name!r}: {exc}") from exc
        return str(path)

    def _forget_cells(self) -> None:
        """The job's record will hold the cells' images: drop their journals (a crash
        before this leaves them for start-up recovery, which drops them too)."""
        journal = getattr(self.engine, "journal", None)
        if journal is None:
            return
        for cell_job in self.cell_jobs:
            try:
                journal.forget(cell_job)
            except (OSError, ValueError):
                log.exception("could not forget the image journal of %s", cell_job)
