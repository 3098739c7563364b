"""The engine: one request in, images (saved, with metadata) out.

    engine = Engine(host)
    result = engine.generate(GenerationRequest(prompt="a red circle"), on_progress=print)

Order of work (hooks at the documented points, see ``plugin_api.hookspecs``):
validate (no model loads; extensions' ``validate_request``) -> the prompt stage
(``core.prompt_stage``: styles, seeds, extra-network tags out, the ``transform_prompt``
chain, tags out of the per-image prompts) -> load the model (``model_loaded`` after a fresh
load) -> ``before_sample`` -> extra networks' ``activate`` -> arrange the weights for the
memory mode (``core.models.offload``) -> encode every distinct prompt pair (with
``ctx.prompt_embeddings``; ``TI hashes``) -> per batch: sampling loop
(``patch_denoiser``/``prepare_noise`` per pass; ``denoiser_kwargs``, ``before_denoiser``,
``after_denoiser``, ``after_cfg`` every denoiser call; ``on_step`` every step) -> decode ->
``after_sample`` -> save -> ``image_saved``; then ``generation_finished`` once (or
``generation_failed`` once, with the error); extra networks' ``deactivate`` however it
ends. Each phase that runs out of device memory is retried in the next memory mode, with a
warning in the result. ``validate`` (the queue's submit) also runs the prompt stage on a
throwaway copy (``ctx.dry_run``).

During sampling, ``ctx.state["easel.denoiser_inputs"]`` holds the denoiser's
conditioning (``encoder_hidden_states``, ``added_cond_kwargs``, ``cfg_batch``) for hooks
that run a model beside the denoiser (ControlNet in ``denoiser_kwargs``).

Interrupts: ``CancelToken.interrupt()`` stops within one step; ``generate`` then RETURNS a
result with ``interrupted=True`` holding the images of the batches that finished and, as
A1111 does, the batch in progress decoded from its last denoised estimate (saved like
the others; nothing when no step of it ran). ``CancelToken.skip()`` drops the current batch and goes on
with the next. ``generate`` raises ``RequestError`` for bad input (before any model
loads), ``ModelError`` when the model cannot be loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from core import generation_metadata as metadata
from core.builtin_settings import FORCE_ZERO_NEGATIVE_PROMPT, PREVIEW_EVERY, PREVIEW_METHOD
from core.errors import RequestError
from core.families.base import Conditioning
from core.models.manager import LoadedModel, ModelManager
from core.models.memory_modes import plan_memory_mode
from core.models.offload import Placement
from core.phase_announcer import PhaseAnnouncer
from core.plugins.extra_networks import ExtraNetworks
from core.previews import APPROX, Preview, PreviewDecoders
from core.prompt_embeddings import PromptEmbeddings, record_embeddings
from core.prompt_stage import dry_copy, new_context, run_prompt_stage, user_settings
from core.request_defaults import fill_from_settings
from core.results import DECODING, ENCODING, LOADING, SAVING, CancelToken, GenerationResult, ProgressEvent
from core.samplers import names_for
from core.sampling import finite, inpaint_model, vae_precision
from core.sampling.hires import schedule_length, upscale_latents
from core.sampling.hires import upscale_images as upscale_hires_images
from core.sampling.img2img import pil_to_tensor, prepare_init, tensor_to_pil
from core.sampling.loop import BatchSkipped, InitImage, LateCfg, SamplingInterrupted, denoise
from core.sampling.memory import check_fits
from core.sampling.prompt_batches import PromptEncodings
from core.sampling.step_cache import StepCacheStats, check_plan, step_cache
from core.saving.filenames import NameFields
from core.saving.journal import ImageJournal
from core.saving.output_settings import OutputOptions
from core.saving.writer import save_image
from core.schedules import SCHEDULE_TYPES, build_scheduler
from core.scripts import ScriptRun, find_script, without_script
from core.styles import styles_path
from core.validation import ValidatedRequest, validate_request
from plugin_api.paths import UnsafePathError
from plugin_api.types import GenerationContext, GenerationRequest

log = logging.getLogger("easel.engine")
CACHE_STATS = "easel.cache_stats"  # ctx.state: the step cache's counts (StepCacheStats)


class Engine:
    def __init__(
        self, host: Any, models: ModelManager | None = None, outputs_dir: Path | None = None
    ) -> None:
        self.host = host
        self.outputs_dir = Path(outputs_dir) if outputs_dir else host.settings.outputs_dir
        if not getattr(host, "started", True):
            host.start()
        self.models = models or ModelManager(host.settings)
        self.journal = ImageJournal(host.settings.state_dir / "image-journal")
        self._lock = threading.Lock()  # one generation at a time: models are shared
        self.extra_networks = ExtraNetworks(getattr(host, "extra_networks", None))
        self.previews = PreviewDecoders(
            host.settings.state_dir, self.models.folders, host.settings.allow_pickle
        )
        # the running generation's preview decoder (one generation at a time: self._lock)
        self._preview: Preview | None = None
        # seconds a batch took from its last step to its saved images, per model: the
        # part of the ETA that steps do not measure
        self._tail_s: dict[str, float] = {}

    # --- queries -----------------------------------------------------------------------

    def sampler_names(self, family: str | None = None) -> list[str]:
        """Sampler names for a family ("sd15", "zimage"...), or every one."""
        if family is None:
            return names_for(self.host.samplers, None)
        from core.families import get_family

        return names_for(self.host.samplers, get_family(family).flow)

    def load_model(self, name: str | None = None) -> LoadedModel:
        """Load a model ahead of a request (``model_loaded`` hooks get ``ctx=None``)."""
        with self._lock:
            model, fresh = self.models.acquire(name)
            if fresh:
                self.host.generation_hooks.model_loaded(None, model)
            return model

    def validate(self, request: GenerationRequest) -> GenerationRequest:
        """A copy of ``request`` with defaults filled; raises RequestError. Also runs the
        prompt stage (seeds, ``transform_prompt``) on a throwaway copy with
        ``ctx.dry_run``, so that a refusal there comes before anything is queued. A
        request naming a script (``script_name``) is checked by that script too."""
        script = find_script(self.host, request)
        if script is not None:
            checked_request = self.validate(without_script(request))
            checked_request = dataclasses.replace(
                checked_request, script_name=script[0].name, script_args=script[1]
            )
            ScriptRun(self, checked_request, *script).validate()
            return checked_request
        checked = self._validate(request)
        dry = dataclasses.replace(checked, request=dry_copy(checked.request), warnings=[])
        ctx = self._new_context(dry, None, CancelToken(), dry_run=True)
        run_prompt_stage(ctx, self.host.generation_hooks, self.extra_networks)
        return checked.request

    def _new_context(
        self, checked: ValidatedRequest, job_id: str | None, cancel: CancelToken, dry_run: bool = False
    ) -> GenerationContext:
        return new_context(
            checked,
            host=self.host,
            styles_file=self._styles_path(),
            job_id=job_id,
            device=str(self.models.device),
            dtype=str(self.models.dtype).replace("torch.", ""),
            is_cancelled=lambda: cancel.interrupted,
            dry_run=dry_run,
        )

    def _validate(self, request: GenerationRequest) -> ValidatedRequest:
        # the user's settings fill what the request leaves empty, the same for every front end
        request = fill_from_settings(request, self._setting, lambda: [m.name for m in self.models.list()])
        checked = validate_request(request, self.models, self.host.samplers, self.host.upscalers)
        req = checked.request
        self.models.vaes.resolve(req.vae, self.models.info(checked.model_name))  # RequestError("vae")
        if req.styles is not None and not isinstance(req.styles, list):
            raise RequestError("styles", "must be a list of style names")
        self.host.generation_hooks.validate_request(req, checked.family.name, user_settings(self.host))
        width, height = checked.largest_size
        check_fits(width, height, req.batch_size, self.models.dtype, self.models.device, checked.uses_cfg)
        if checked.cache is not None:
            compile_mode = self.models.acceleration.compile_mode(self.models.device)
            checked.warnings.extend(check_plan(checked.cache, checked.family, compile_mode, req.steps))
        return checked

    # --- generation --------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        *,
        job_id: str | None = None,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        script = find_script(self.host, request)
        if script is not None:  # several generations in this job (core/scripts.py)
            checked_request = self.validate(request)  # defaults filled, the script's own checks
            return ScriptRun(
                self, checked_request, script[0], dict(checked_request.script_args),
                job_id=job_id, on_progress=on_progress, cancel=cancel,
            ).run()  # fmt: skip
        checked = self._validate(request)
        cancel = cancel or CancelToken()
        hooks = self.host.generation_hooks
        # hooks of this job run under the time limit and reach the crash marker
        # (core/plugins/hook_guard.py, crash_marker.py)
        dispatcher = getattr(getattr(self.host, "extensions", None), "hooks", None)
        timeout_s = float(getattr(self.host.settings, "extension_hook_timeout_s", 0) or 0)
        guard = dispatcher.job(job_id, cancel, timeout_s) if dispatcher is not None else nullcontext()
        with self._lock, torch.inference_mode(), guard:
            ctx = self._new_context(checked, job_id, cancel)
            try:
                result = self._generate(checked, ctx, on_progress, cancel)
            except Exception as exc:
                hooks.generation_failed(ctx, exc)  # once per request, whatever the phase
                raise
            hooks.generation_finished(ctx, result)
            return result

    def _generate(
        self,
        checked: ValidatedRequest,
        ctx: GenerationContext,
        on_progress: Callable[[ProgressEvent], None] | None,
        cancel: CancelToken,
    ) -> GenerationResult:
        started = time.perf_counter()
        req, hooks = checked.request, self.host.generation_hooks
        for warning in checked.warnings:
            log.info("job %s: %s", ctx.job_id, warning)
        # seeds first, then the transform_prompt chain (extra-network tags out before and after it)
        run_prompt_stage(ctx, hooks, self.extra_networks)
        base_seed = req.seed

        announce = PhaseAnnouncer(on_progress, req, started)
        announce(LOADING)
        model, fresh = self.models.acquire(checked.model_name)
        ctx.model = model
        if fresh:
            hooks.model_loaded(ctx, model)
        # before the memory mode arranges the modules: the chosen VAE is one of them
        self.models.select_vae(model, req.vae)

        ctx.total_steps = req.steps
        hooks.before_sample(ctx)
        try:
            self.extra_networks.activate(ctx)
            # after the activation: the placement must see the LoRA layers it added
            mode, why = self._memory_mode(checked, model)
            log.info("memory mode %s (%s)", mode, why)
            with Placement(model, mode, self.models.device) as placement:
                self._preview = self._preview_for(model, placement, ctx)
                result = self._generate_batches(checked, model, ctx, placement, announce, cancel)
        finally:
            self.extra_networks.deactivate(ctx)
        result.parameters = metadata.result_parameters(req, checked, base_seed)
        result.parameters["memory_mode"] = placement.mode
        cache_stats = ctx.state.get(CACHE_STATS)
        result.parameters["cache"] = (
            {**checked.cache.as_request(), **cache_stats.as_dict()} if cache_stats is not None else None
        )
        result.warnings = list(ctx.warnings)
        # the context's own dicts: what generation_finished adds still reaches the caller
        result.extra_params, result.results = ctx.extra_params, ctx.results
        result.elapsed_s = time.perf_counter() - started
        return result

    def _preview_for(
        self, model: LoadedModel, placement: Placement, ctx: GenerationContext
    ) -> Preview | None:
        """The live preview decoder the settings ask for (fitting the approximate map, the
        first time for a model and VAE, uses the VAE: in the VAE's placement)."""
        method = self._setting(PREVIEW_METHOD, APPROX)
        hashes = self.models.hashes
        return placement.run("vae", lambda: self.previews.for_model(model, method, hashes), ctx.warnings)

    def _generate_batches(
        self,
        checked: ValidatedRequest,
        model: LoadedModel,
        ctx: GenerationContext,
        placement: Placement,
        announce: PhaseAnnouncer,
        cancel: CancelToken,
    ) -> GenerationResult:
        req, family, hooks = checked.request, checked.family, self.host.generation_hooks
        use_cfg = checked.uses_cfg
        # every distinct (prompt, negative) pair of the request is encoded once, up front;
        # one PromptEmbeddings for them all, so TI hashes name every embedding any image used
        embeddings = PromptEmbeddings(ctx.prompt_embeddings)
        encodings = PromptEncodings(
            lambda prompt, negative: with_distilled_guidance(
                family.encode_prompt_pair(
                    model.components,
                    prompt,
                    negative,
                    req.clip_skip,
                    req.width,
                    req.height,
                    use_cfg,
                    embeddings=embeddings,
                ),
                req.distilled_cfg_scale,
            ),
            # SDXL, as A1111 and diffusers: zeros for an empty negative, not the encoded ""
            family.empty_negative if self._setting(FORCE_ZERO_NEGATIVE_PROMPT, True) else None,
        )
        announce(ENCODING)
        placement.run("text", lambda: encodings.encode_all(ctx.prompts, ctx.negative_prompts), ctx.warnings)
        record_embeddings(embeddings, ctx)
        result = GenerationResult(
            images=[],
            seeds=[],
            infotexts=[],
            prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            original_prompt=ctx.original_prompt,
            original_negative_prompt=ctx.original_negative_prompt,
        )
        for batch_index in range(req.batch_count):
            first = batch_index * req.batch_size
            seeds = ctx.seeds[first : first + req.batch_size]
            # one conditioning row per image: the images of a batch may have their own prompts
            cond, uncond = encodings.batch(ctx.prompts[first : first + req.batch_size],
                                           ctx.negative_prompts[first : first + req.batch_size])  # fmt: skip
            try:
                images = self._run_batch(
                    checked, model, placement, ctx, cond, uncond, seeds, batch_index, announce, cancel
                )
            except BatchSkipped:
                log.info("batch %d skipped", batch_index)
                continue
            except SamplingInterrupted as stopped:
                result.interrupted = True
                if not stopped.images:  # stopped before its first step
                    break
                images = stopped.images  # as far as it got: kept and saved, as A1111 does
            images = hooks.after_sample(ctx, images)
            announce(SAVING, batch_index)
            for position, (image, seed) in enumerate(zip(images, seeds, strict=False)):
                index = first + position
                infotext = metadata.infotext(
                    checked, model, ctx, seed, position, index, hashes=self.models.hashes
                )
                result.images.append(image)
                result.seeds.append(seed)
                result.infotexts.append(infotext)
                result.prompts.append(ctx.prompts[index])
                result.negative_prompts.append(ctx.negative_prompts[index])
                if req.save_images:
                    fields = metadata.name_fields(checked, model, ctx, seed, position, index)
                    path, written = self._save(image, req, ctx, index, seed, infotext, fields)
                    result.paths.append(str(path))
                    if written:
                        hooks.image_saved(ctx, str(path))
            self._tail_s[model.name] = announce.batch_done()
            if result.interrupted:
                break
        return result

    def _save(
        self,
        image: Any,
        req: GenerationRequest,
        ctx: GenerationContext,
        index: int,
        seed: int,
        infotext: str,
        fields: NameFields,
    ) -> tuple[Path, bool]:
        """Write one image: (its path, whether it was written now), with the saving
        settings as they were when the generation started (``ctx.settings``). For a job,
        through its image journal (crash-safe: core/saving/journal.py); an image a retried
        job already wrote (same index and seed) is not written a second time."""
        mode = "txt2img" if req.init_image is None else "img2img"
        options = OutputOptions.from_settings(ctx.settings)
        job_id = ctx.job_id
        try:
            if job_id is None:
                path = save_image(
                    image,
                    self.outputs_dir,
                    mode,
                    seed,
                    infotext,
                    req.output_format,
                    options=options,
                    fields=fields,
                )
                return path, True
            existing = self.journal.existing(job_id, index, seed)
            if existing is not None:
                log.info("job %s: image %d is already saved at %s", job_id, index, existing)
                return existing, False
            # Workers sharing a queue name a job's images after it (core/jobs/README: several workers).
            stem = f"{job_id}-{index}-{seed}" if self.host.settings.job_image_names else None
            path = save_image(
                image, self.outputs_dir, mode, seed, infotext, req.output_format,
                before_rename=lambda tmp, final: self.journal.record(job_id, index, seed, tmp, final),
                stem=stem, options=options, fields=fields,
            )  # fmt: skip
        except UnsafePathError as exc:  # a folder setting that leads out (a symlink planted since)
            raise RequestError("settings", str(exc)) from exc
        return path, True

    def _memory_mode(self, checked: ValidatedRequest, model: LoadedModel) -> tuple[str, str]:
        req = checked.request
        width, height = checked.largest_size
        return plan_memory_mode(
            self.models.memory_mode, model, self.models.device,
            width=width, height=height, batch_size=req.batch_size, cfg=checked.uses_cfg,
        )  # fmt: skip

    def _run_batch(
        self,
        checked: ValidatedRequest,
        model: LoadedModel,
        placement: Placement,
        ctx: GenerationContext,
        cond: Any,
        uncond: Any,
        seeds: list[int],
        batch_index: int,
        announce: PhaseAnnouncer,
        cancel: CancelToken,
    ) -> list[Any]:
        req = checked.request
        prepared = (
            placement.run("vae", lambda: prepare_init(req, model, seeds), ctx.warnings)
            if req.init_image is not None
            else None
        )

        hires = checked.hires
        hires_steps = hires.steps if hires is not None else 0

        tail_s = self._tail_s.get(model.name, 0.0)

        def report(step: int, total: int, elapsed: float, preview: Any) -> None:
            # the hires pass follows the first one in the same bar
            announce.step(step, total + hires_steps, batch_index, elapsed, preview, tail_s)

        conditioning = None
        if inpaint_model.is_inpainting_model(model):
            conditioning = placement.run(
                "vae",
                lambda: inpaint_model.image_conditioning(
                    model, seeds, req.width, req.height,
                    prepared.pixels if prepared else None, prepared.mask if prepared else None,
                ),
                ctx.warnings,
            )  # fmt: skip
        started = time.perf_counter()
        stopped: SamplingInterrupted | None = None
        try:
            latents = self._sample_pass(
                checked, model, placement, ctx, cond, uncond, seeds, cancel,
                steps=req.steps, width=req.width, height=req.height, on_step=report,
                init=prepared.init if prepared else None, image_conditioning=conditioning,
            )  # fmt: skip
            if hires is not None:
                first_steps = ctx.total_steps

                def report_hires(step: int, total: int, elapsed: float, preview: Any) -> None:
                    # one bar and one clock over both passes
                    report(first_steps + step, first_steps, time.perf_counter() - started, preview)

                latents = self._hires_pass(
                    checked, model, placement, ctx, cond, uncond, seeds, latents, report_hires, cancel
                )
        except SamplingInterrupted as exc:
            # A1111 decodes the last latent of an interrupted batch and returns it
            if exc.latents is None:
                raise
            stopped, latents = exc, exc.latents
        # NaN guard: a NaN latent would decode to a black image reported "done"
        finite.check_latents(latents, ctx, checked.model_name)
        announce(DECODING, batch_index)
        decoded = placement.run(
            "vae",
            lambda: vae_precision.decode(model.adapter, model.components, latents, ctx.warnings),
            ctx.warnings,
        )
        finite.check_decoded(decoded, ctx, checked.model_name)  # after the float32 retry
        images = tensor_to_pil(decoded)
        images = prepared.finish(images) if prepared else images
        if stopped is not None:
            stopped.images = images
            raise stopped
        return images

    def _hires_pass(
        self,
        checked: ValidatedRequest,
        model: LoadedModel,
        placement: Placement,
        ctx: GenerationContext,
        cond: Any,
        uncond: Any,
        seeds: list[int],
        latents: torch.Tensor,
        on_step: Callable[[int, int, float, Any], None],
        cancel: CancelToken,
    ) -> torch.Tensor:
        """Upscale the first pass (in latent space or through an upscaler), then denoise
        again at the hires size (see ``core.sampling.hires``)."""
        req, plan = checked.request, checked.hires
        adapter, components = model.adapter, model.components
        batch = len(seeds)
        shape = adapter.latent_shape(components, batch, plan.width, plan.height)
        if plan.latent_mode is not None:
            upscaled = upscale_latents(latents, tuple(shape[-2:]), plan.latent_mode)
        else:
            decoded = placement.run(
                "vae", lambda: vae_precision.decode(adapter, components, latents, ctx.warnings), ctx.warnings
            )
            images = upscale_hires_images(tensor_to_pil(decoded), plan)
            pixels = torch.cat([pil_to_tensor(image) for image in images]).to(model.device)
            generator = torch.Generator("cpu").manual_seed(int(seeds[0]))
            upscaled = placement.run(
                "vae", lambda: vae_precision.encode(adapter, components, pixels, generator), ctx.warnings
            ).float()
        strength = float(req.denoising_strength)
        init = InitImage(latents=upscaled, strength=strength)
        conditioning = None
        if inpaint_model.is_inpainting_model(model):
            # as A1111's hires pass: the whole image masked, the zero image under it
            conditioning = placement.run(
                "vae",
                lambda: inpaint_model.image_conditioning(model, seeds, plan.width, plan.height),
                ctx.warnings,
            )

        return self._sample_pass(
            checked, model, placement, ctx, cond, uncond, seeds, cancel,
            steps=schedule_length(plan.steps, strength), width=plan.width, height=plan.height,
            on_step=on_step, init=init, image_conditioning=conditioning, hires=True,
        )  # fmt: skip

    def _sample_pass(
        self,
        checked: ValidatedRequest,
        model: LoadedModel,
        placement: Placement,
        ctx: GenerationContext,
        cond: Any,
        uncond: Any,
        seeds: list[int],
        cancel: CancelToken,
        *,
        steps: int,
        width: int,
        height: int,
        on_step: Callable[[int, int, float, Any], None],
        init: InitImage | None,
        image_conditioning: torch.Tensor | None = None,
        hires: bool = False,
    ) -> torch.Tensor:
        """One run of the sampling loop (the first pass or the hires pass), retried in the
        next memory mode when it runs out of memory."""
        req = checked.request

        def sample() -> Any:
            # a fresh scheduler per run: schedulers keep per-run state
            built = build_scheduler(
                checked.sampler,
                checked.schedule or SCHEDULE_TYPES[0],
                dict(model.components["scheduler"].config),
                flow=checked.family.flow,
                family=checked.family.name,
                shift=req.shift,
            )
            for warning in built.warnings:
                if warning not in ctx.warnings:  # the hires pass builds it again
                    ctx.warnings.append(warning)
            stats = ctx.state.setdefault(CACHE_STATS, StepCacheStats()) if checked.cache else None
            # the pass's schedule: MagCache's measured ratios are reused for the same one only
            key = (checked.sampler_name, req.scheduler, steps, init.strength if init else 1.0, req.shift)
            # the cache's hooks live for this pass only (removed on the way out, also on an
            # error or an interrupt): nothing reaches the next pass or job
            with step_cache(checked.cache, model, key, stats) as cache:
                latents = denoise(
                    model=model,
                    scheduler=built.scheduler,
                    set_timesteps=built.set_timesteps,
                    cond=cond,  # already one row per image (PromptEncodings.batch)
                    uncond=uncond,
                    cfg_scale=req.cfg_scale,
                    late_cfg=LateCfg.from_request(req),
                    steps=steps,
                    seeds=seeds,
                    width=width,
                    height=height,
                    ctx=ctx,
                    hooks=self.host.generation_hooks,
                    cancel=cancel,
                    on_step=on_step,
                    init=init,
                    preview_every=self._preview_every() if self._preview is not None else 0,
                    preview=self._preview,
                    image_conditioning=image_conditioning,
                    sample_fn=checked.sampler.sample,
                    hires=hires,
                    step_cache=cache,
                )
                ctx.warnings.extend(w for w in (cache.warnings if cache else []) if w not in ctx.warnings)
            return latents

        return placement.run("denoiser", sample, ctx.warnings)

    def _setting(self, key: str, default: Any) -> Any:
        """A user setting (``core.builtin_settings``); its default when none is registered
        (a host whose builtin plugins were left out)."""
        try:
            return self.host.get_setting(key)
        except (KeyError, AttributeError):
            return default

    def _styles_path(self) -> Path:
        return styles_path(self.host.settings.data_dir)

    def _preview_every(self) -> int:
        """Steps between live previews: the setting, else EASEL_PREVIEW_EVERY, else every
        step on a CPU (a step is slow there, a preview free) and every 5th on a GPU."""
        setting = int(self._setting(PREVIEW_EVERY, 0))
        if setting != 0:
            return max(0, setting)  # -1: none
        every = self.host.settings.preview_every
        if every > 0:
            return every
        return 1 if self.models.device.type == "cpu" else 5


def with_distilled_guidance(
    pair: tuple[Conditioning, Conditioning | None], value: float | None
) -> tuple[Conditioning, Conditioning | None]:
    """The encoded pair with the distilled guidance value (FLUX.1-dev's "Distilled CFG
    Scale") beside the text, one per image like the pooled embeddings, so batching, CFG
    and per-image prompts carry it as they carry the text."""
    if value is None:
        return pair
    guidance = torch.tensor([float(value)])
    cond, uncond = pair
    cond.extra["guidance"] = guidance
    if uncond is not None:
        uncond.extra["guidance"] = guidance.clone()
    return cond, uncond
