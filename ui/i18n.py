"""Every text the WebUI shows, in English and Simplified Chinese.

Labels are passed to Gradio as ``t(key)`` (a ``gr.I18n`` key); the browser's language
(or the ``ui.language`` setting, see ``ui/language.py``) picks the translation in the
frontend. Keep one entry per key with both languages: a test checks it.
"""

from __future__ import annotations

import gradio as gr

LANGUAGES = ("en", "zh-CN")

# key: (English, Simplified Chinese)
TEXTS: dict[str, tuple[str, str]] = {
    # tabs
    "tab.txt2img": ("txt2img", "文生图"),
    "tab.img2img": ("img2img", "图生图"),
    "tab.queue": ("Queue", "队列"),
    "tab.png_info": ("PNG Info", "图片信息"),
    "tab.extensions": ("Extensions", "扩展"),
    "tab.settings": ("Settings", "设置"),
    # generation form
    "gen.prompt": ("Prompt", "提示词"),
    "gen.prompt_placeholder": ("Describe the image…", "描述你想要的图像……"),
    "gen.negative_prompt": ("Negative prompt", "反向提示词"),
    "gen.model": ("Model", "模型"),
    "gen.refresh_models": ("🔄", "🔄"),
    "gen.vae": ("SD VAE", "SD VAE（变分自编码器）"),
    "gen.sampler": ("Sampling method", "采样方法"),
    "gen.scheduler": ("Schedule type", "调度类型"),
    "gen.styles": ("Styles", "预设样式"),
    "gen.apply_styles": ("Apply to prompt", "应用到提示词"),
    "gen.steps": ("Sampling steps", "采样步数"),
    "gen.cfg": ("CFG scale", "提示词引导系数 (CFG)"),
    "hires.title": ("Hires. fix", "高分辨率修复"),
    "cache.title": ("Step cache (faster, approximate)", "步骤缓存 (更快, 近似)"),
    "cache.method": ("Cache method", "缓存方法"),
    "cache.method_info": (
        "deepcache: SD/SDXL; fbcache, magcache, taylorseer: Z-Image. Off by default",
        "deepcache: SD/SDXL; fbcache、magcache、taylorseer: Z-Image。默认关闭",
    ),
    "cache.threshold": ("Threshold / interval", "阈值 / 间隔"),
    "cache.threshold_info": (
        "empty: the method's default (deepcache/taylorseer: full step every 3; fbcache 0.05, magcache 0.06)",
        "留空: 方法默认值 (deepcache/taylorseer: 每 3 步完整计算一次; fbcache 0.05, magcache 0.06)",
    ),
    "hires.enable": ("Upscale, then refine at the larger size", "放大后在高分辨率下重绘"),
    "hires.upscaler": ("Upscaler", "放大算法"),
    "hires.scale": ("Upscale by", "放大倍数"),
    "hires.steps": ("Hires steps (0 = sampling steps)", "高分辨率步数 (0 = 同采样步数)"),
    "gen.late_cfg": ("Late CFG scale", "后段 CFG"),
    "gen.late_cfg_start": ("Late CFG from (0-1)", "后段 CFG 起点 (0-1)"),
    "gen.late_cfg_info": (
        "for the low-noise end of sampling; empty: the model's recommendation",
        "用于采样后段（低噪声）；留空：使用模型推荐值",
    ),
    "gen.width": ("Width", "宽度"),
    "gen.height": ("Height", "高度"),
    "gen.size_presets": ("Size presets", "尺寸预设"),
    "gen.seed": ("Seed (-1 = random)", "随机种子 (-1 为随机)"),
    "gen.random_seed": ("🎲", "🎲"),
    "gen.reuse_seed": ("♻️", "♻️"),
    "gen.batch_size": ("Batch size", "单批数量"),
    "gen.batch_count": ("Batch count", "总批次数"),
    "gen.generate": ("Generate", "生成"),
    "gen.interrupt": ("Interrupt", "中止"),
    "gen.skip": ("Skip", "跳过"),
    "gen.init_image": ("Input image", "输入图像"),
    "gen.denoising": ("Denoising strength", "重绘幅度"),
    "gen.mask": ("Inpaint mask (white = repaint; optional)", "重绘蒙版（白色为重绘区域，可选）"),
    "gen.progress": ("Progress", "进度"),
    "gen.preview": ("Preview", "预览"),
    "gen.gallery": ("Output", "输出"),
    "gen.info": ("Generation info", "生成信息"),
    "gen.send_to_img2img": ("Send to img2img", "发送到图生图"),
    "gen.download_selected": ("Download selected", "下载选中图片"),
    "gen.download_all": ("Download all (zip)", "全部下载 (zip)"),
    "gen.downloads": ("Download", "下载"),
    "gen.error": ("Error", "错误"),
    # progress label (built on the server: see ``text`` and ``request_language``)
    "progress.queued": ("queued", "排队中"),
    "progress.starting": ("starting", "正在开始"),
    "progress.loading": ("loading model", "正在加载模型"),
    "progress.encoding": ("encoding prompt", "正在编码提示词"),
    "progress.sampling": ("sampling", "采样"),
    "progress.decoding": ("decoding", "正在解码"),
    "progress.saving": ("saving", "正在保存"),
    "progress.step": ("step", "步数"),
    "progress.batch": ("batch", "批次"),
    "progress.eta": ("ETA", "剩余"),
    "progress.done": ("done", "完成"),
    "progress.failed": ("failed", "失败"),
    "progress.cancelled": ("cancelled", "已取消"),
    "progress.interrupted": ("interrupted", "已中止"),
    # queue tab
    "queue.jobs": ("Jobs", "任务"),
    "queue.refresh": ("Refresh", "刷新"),
    "queue.auto_refresh": ("Refresh every 2 s", "每 2 秒自动刷新"),
    "queue.job_id": ("Job id", "任务 ID"),
    "queue.cancel": ("Cancel job", "取消任务"),
    "queue.interrupt": ("Interrupt running job", "中止正在运行的任务"),
    "queue.message": ("Result", "结果"),
    "queue.workers": ("Workers", "工作进程"),
    # png info tab
    "png.image": ("Image", "图像"),
    "png.parameters": ("Parameters", "参数"),
    "png.parsed": ("Parsed fields", "解析后的字段"),
    "png.send_to_txt2img": ("Send to txt2img", "发送到文生图"),
    "png.send_to_img2img": ("Send to img2img", "发送到图生图"),
    "png.caption": ("Caption", "图像描述"),
    "gen.interrogate": ("Interrogate", "反推提示词"),
    "gen.shift": ("Shift", "偏移 (shift)"),
    "gen.shift_info": (
        "Flow-matching models only; empty: the model's own",
        "仅流匹配模型；留空：使用模型自己的值",
    ),
    # extensions tab
    "ext.installed": ("Installed extensions", "已安装的扩展"),
    "ext.refresh": ("Refresh", "刷新"),
    "ext.name": ("Extension", "扩展名称"),
    "ext.enable": ("Enable", "启用"),
    "ext.disable": ("Disable", "禁用"),
    "ext.restart_note": (
        "Enabling or disabling takes effect at the next start.",
        "启用或禁用将在下次启动时生效。",
    ),
    "ext.install_header": ("Install from a git URL, folder or zip", "从 git 地址、文件夹或 zip 安装"),
    "ext.source": ("Source (git URL, folder or zip)", "来源 (git 地址、文件夹或 zip)"),
    "ext.install": ("Install", "安装"),
    "ext.remove": ("Remove", "删除"),
    "ext.install_disabled": (
        "Installing is off: the server listens beyond this computer (start with EASEL_ALLOW_REMOTE_INSTALL=1 to allow it).",
        "安装已关闭:服务器对外网开放(设置 EASEL_ALLOW_REMOTE_INSTALL=1 以允许)。",
    ),
    "ext.message": ("Result", "结果"),
    "ext.tab_failed": ("This tab failed to build", "此标签页构建失败"),
    # settings tab
    "set.host": ("Host (read-only)", "主机 (只读)"),
    "set.language": ("Interface language", "界面语言"),
    "set.language_note": (
        "auto follows the browser; takes effect when the page is reloaded.",
        "auto 表示跟随浏览器语言;重新加载页面后生效。",
    ),
    "set.extension_settings": ("Extension settings", "扩展设置"),
    "set.none": ("No extension registered a setting.", "没有扩展注册设置项。"),
    "set.save": ("Save settings", "保存设置"),
    "set.message": ("Result", "结果"),
}

EN = {key: pair[0] for key, pair in TEXTS.items()}
ZH_CN = {key: pair[1] for key, pair in TEXTS.items()}

I18N = gr.I18n(en=EN, **{"zh-CN": ZH_CN})


def t(key: str) -> gr.i18n.I18nData:
    """The translatable label for ``key`` (a KeyError names a key that has no entry)."""
    if key not in TEXTS:
        raise KeyError(f"no translation entry for UI text {key!r}; add it to ui/i18n.py TEXTS")
    return I18N(key)


def text(key: str, language: str = "en") -> str:
    """The plain translated string, for texts built on the server (messages, tables)."""
    english, chinese = TEXTS[key]
    return chinese if language == "zh-CN" else english


def language_of(accept_language: str | None, setting: str = "auto") -> str:
    """The language a server-built text should use: the ``ui.language`` setting, else
    the browser's first choice (any Chinese but Traditional is Simplified here)."""
    if setting in LANGUAGES:
        return setting
    first = (accept_language or "").split(",")[0].split(";")[0].strip().lower()
    return "zh-CN" if first.startswith("zh") and first not in ("zh-tw", "zh-hk", "zh-hant") else "en"
