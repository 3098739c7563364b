"""Step statistics: the latents' mean and standard deviation after every sampling step,
as a structured result (``ctx.results["step_stats"]``) and at ``GET /step_stats/last``."""

from __future__ import annotations

from plugin_api import hookimpl

NAME = "step_stats"
LAST: dict = {}


@hookimpl
def on_step(ctx, step):
    stats = ctx.state.setdefault(NAME, [])
    latents = step.latents.float()
    stats.append(
        {"step": step.step, "sigma": step.sigma, "mean": latents.mean().item(), "std": latents.std().item()}
    )


@hookimpl
def after_sample(ctx, images):
    # once per batch, before its images are saved: their infotexts carry it too
    steps = ctx.state.pop(NAME, [])
    entry = ctx.results.setdefault(NAME, {"batches": []})
    entry["batches"].append(steps)
    entry.update({"steps": len(steps), "final_std": steps[-1]["std"] if steps else None})


@hookimpl
def generation_finished(ctx, result):
    LAST.clear()
    LAST.update({"job_id": ctx.job_id, "seeds": list(result.seeds), **ctx.results.get(NAME, {})})


@hookimpl
def register_api_routes(router):
    @router.get("/step_stats/last")
    def last():
        return LAST
