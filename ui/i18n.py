"""The WebUI's languages: keyed texts (``t(key)``) and the localization tables.

Two ways to make a text translatable, both picked in the frontend by the browser's
language (or the ``ui.language`` setting, see ``ui/language.py``):

- write plain English in the UI code and add ``"English": "中文"`` to
  ``ui/localizations/zh-CN.json`` (an extension: to its own ``localizations/zh-CN.json``);
  ``ui/translated_blocks.py`` makes it an i18n key when the page is built. New UI should
  do this (A1111's way: a missing entry shows English, and the zh browser test lists it);
- or the older keyed form: ``label=t("gen.prompt")`` with an entry in ``TEXTS`` below.

Texts the server builds (messages, progress) go through ``translate``.
"""

from __future__ import annotations

import gradio as gr

from plugin_api.localization import fill
from ui.localization import Localizations, load_localizations
from ui.settings_texts import SETTINGS_TEXTS

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
    "gen.steps": ("Sampling steps", "迭代步数"),
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
    "hires.steps": ("Hires steps (0 = sampling steps)", "高分迭代步数 (0 = 同迭代步数)"),
    "gen.late_cfg": ("Late CFG scale", "后段 CFG"),
    "gen.late_cfg_start": ("Late CFG from (0-1)", "后段 CFG 起点 (0-1)"),
    "gen.late_cfg_info": (
        "for the low-noise end of sampling; empty: the model's recommendation",
        "用于采样后段（低噪声）；留空：使用模型推荐值",
    ),
    "gen.width": ("Width", "宽度"),
    "gen.height": ("Height", "高度"),
    "gen.size_presets": ("Size presets", "尺寸预设"),
    "gen.seed": ("Seed (-1 = random)", "随机数种子 (-1 为随机)"),
    "gen.random_seed": ("🎲", "🎲"),
    "gen.reuse_seed": ("♻️", "♻️"),
    "gen.batch_size": ("Batch size", "单批数量"),
    "gen.batch_count": ("Batch count", "总批次数"),
    "gen.generate": ("Generate", "生成"),
    "gen.interrupt": ("Interrupt", "中止"),
    "gen.skip": ("Skip", "跳过"),
    "gen.init_image": ("Input image", "输入图像"),
    "gen.denoising": ("Denoising strength", "重绘幅度"),
    "gen.mask": ("Inpaint mask (white = repaint)", "重绘蒙版（白色为重绘区域）"),
    "gen.progress": ("Progress", "进度"),
    # img2img modes and inpainting (ui/img2img_modes.py)
    "i2i.mode_img2img": ("img2img", "图生图"),
    "i2i.mode_sketch": ("Sketch", "涂鸦"),
    "i2i.mode_inpaint": ("Inpaint", "局部重绘"),
    "i2i.mode_inpaint_upload": ("Inpaint upload", "上传重绘蒙版"),
    "i2i.sketch": ("Sketch on the image", "在图像上涂鸦"),
    "i2i.inpaint": ("Paint the area to repaint", "涂抹需要重绘的区域"),
    "i2i.inpaint_options": ("Inpainting", "局部重绘选项"),
    "i2i.mask_blur": ("Mask blur", "蒙版边缘模糊度"),
    "i2i.mask_mode": ("Mask mode", "蒙版模式"),
    "i2i.masked_content": ("Masked content", "蒙版区域内容处理"),
    "i2i.inpaint_area": ("Inpaint area", "重绘区域"),
    "i2i.padding": ("Only masked padding, pixels", "仅蒙版区域下边缘预留像素"),
    "gen.preview": ("Preview", "预览"),
    "gen.gallery": ("Output", "输出"),
    "gen.info": ("Generation info", "生成信息"),
    "gen.send_to_img2img": ("Send to img2img", "发送到图生图"),
    "gen.send_to_txt2img": ("Send to txt2img", "发送到文生图"),
    "gen.send_to_inpaint": ("Send to inpaint", "发送到局部重绘"),
    "gen.send_to_extras": ("Send to extras", "发送到附加功能"),
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
        "安装已关闭：服务器对外网开放（设置 EASEL_ALLOW_REMOTE_INSTALL=1 以允许）。",
    ),
    "ext.message": ("Result", "结果"),
    "ext.tab_failed": ("This tab failed to build", "此标签页构建失败"),
    # settings tab
    "set.host": ("Host (read-only)", "主机 (只读)"),
    "set.language": ("Interface language", "界面语言"),
    "set.language_note": (
        "auto follows the browser; takes effect when the page is reloaded.",
        "自动：跟随浏览器语言；重新加载页面后生效。",
    ),
    "set.extension_settings": ("Extension settings", "扩展设置"),
    "set.none": ("No extension registered a setting.", "没有扩展注册设置项。"),
    "set.save": ("Save settings", "保存设置"),
    "set.message": ("Result", "结果"),
    # queueing, card browser, history, queue rows (issue #24)
    "progress.more_queued": ("more queued", "个任务排队中"),
    "cards.title": ("Extra networks (LoRA, embeddings, checkpoints)", "附加网络 (LoRA、嵌入、模型)"),
    "cards.search": ("Search", "搜索"),
    "cards.weight": ("Weight of an inserted tag", "插入标签的权重"),
    "cards.refresh": ("Refresh", "刷新"),
    "cards.checkpoints": ("Checkpoints", "模型"),
    "tab.history": ("History", "历史"),
    "history.folder": ("Folder", "文件夹"),
    "history.date": ("Date", "日期"),
    "history.refresh": ("Refresh", "刷新"),
    "history.images": ("Images", "图像"),
    "history.path": ("File (in the outputs folder)", "文件 (输出文件夹内)"),
    "history.delete": ("Delete (to the trash)", "删除 (移到回收站)"),
    "history.message": ("Result", "结果"),
    "queue.opened": ("Images of the opened job", "所打开任务的图像"),
}

TEXTS |= SETTINGS_TEXTS  # ui/settings_texts.py: the Settings tab's own

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


# The tables ``translate`` reads: the core's at import, the core's and every loaded
# extension's once the WebUI is built (``use_localizations``).
_active = load_localizations(None)


def use_localizations(localizations: Localizations) -> None:
    global _active
    _active = localizations


def active_localizations() -> Localizations:
    return _active


def translate(english: str, language: str = "en", **values: object) -> str:
    """A server-built text in ``language``: the entry for ``english`` (a template whose
    ``{name}`` fields are filled from ``values``), or the English itself."""
    template = english if language == "en" else _active.translate(english, language)
    return fill(template, english, values) if values else template


class Message(str):
    """An English message that keeps its template, so ``say`` can put it in another
    language: ``Message("job {job_id} cancelled", job_id=x)`` is the English text, and
    ``"job {job_id} cancelled": "任务 {job_id} 已取消"`` in a localization translates it."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, **values: object) -> Message:
        message = super().__new__(cls, template.format(**values) if values else template)
        message.template = template
        message.values = values
        return message


def say(message: str, language: str = "en") -> str:
    """``message`` (a ``Message`` or plain English) in ``language``; values that are
    Messages themselves (a status word) are translated too."""
    if not isinstance(message, Message):
        return translate(message, language)
    values = {k: say(v, language) if isinstance(v, Message) else v for k, v in message.values.items()}
    return translate(message.template, language, **values)


def build_i18n(localizations: Localizations) -> gr.I18n:
    """The i18n the frontend gets: the keyed ``TEXTS`` and the English-keyed tables."""
    tables = localizations.frontend_tables()
    merged: dict[str, dict[str, str]] = {"en": dict(EN), "zh-CN": dict(ZH_CN)}
    for language, table in tables.items():
        target = merged.setdefault(language, {})
        for english, translated in table.items():
            target.setdefault(english, translated)  # a TEXTS key wins over an English text
    return gr.I18n(**merged)


def language_of(accept_language: str | None, setting: str = "auto") -> str:
    """The language a server-built text should use: the ``ui.language`` setting, else
    the browser's first choice (any Chinese but Traditional is Simplified here)."""
    if setting in LANGUAGES:
        return setting
    first = (accept_language or "").split(",")[0].split(";")[0].strip().lower()
    return "zh-CN" if first.startswith("zh") and first not in ("zh-tw", "zh-hk", "zh-hant") else "en"
