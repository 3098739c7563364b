"""Queueing from the WebUI, its keys, the card browser, the history and queue tabs, in a
real headless Chromium against the real server (`easel serve`), as a user drives them.

One server for the module; each test opens its own browser context (its own session).
Screenshots of the history and queue tabs go to /tmp/shots-queuehist/ (issue #24).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_webui_browser import GENERATION_TIMEOUT_MS, fill_form, open_page, wait_for_result
from tests.webui_server import launched_chromium, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS_DIR = Path("/tmp/shots-queuehist")

# Records, every 50 ms in the page, the most jobs the bar said were waiting behind the
# running one, and the status the bar went through.
WATCH_WAITING_JS = """
() => {
  window.__easel_waiting = { most: 0, statuses: [] };
  const watch = window.__easel_waiting;
  setInterval(() => {
    const note = document.querySelector('#txt2img_progress .easel-waiting');
    const waiting = note ? Number(note.dataset.waiting) : 0;
    watch.most = Math.max(watch.most, waiting);
    const bar = document.querySelector('#txt2img_progress .easel-progress');
    const status = bar && bar.dataset.status;
    if (status && watch.statuses[watch.statuses.length - 1] !== status) watch.statuses.push(status);
  }, 50);
}
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("webui-queue")


@pytest.fixture(scope="module")
def server(scratch):
    with running_server(scratch) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as launched:
        yield launched


def api_jobs(server, prompt: str) -> list[dict]:
    """The jobs whose prompt is ``prompt``, through the native API (newest first)."""
    with urllib.request.urlopen(server.url + "api/v1/jobs?limit=500", timeout=30) as response:
        jobs = json.load(response)["jobs"]
    return [job for job in jobs if job["request"].get("prompt") == prompt]


def wait_for_jobs(server, prompt: str, count: int, timeout_s: float = 180.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = api_jobs(server, prompt)
        if len(jobs) >= count and all(job["status"] in ("done", "failed", "interrupted") for job in jobs):
            return jobs
        time.sleep(0.5)
    raise AssertionError(f"{count} finished jobs for {prompt!r} did not come: {api_jobs(server, prompt)}")


def shot(page, name: str) -> Path:
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_clicking_a_lora_card_puts_its_tag_in_the_prompt(browser, server):
    context, page = open_page(browser, server)
    page.fill("#txt2img_prompt textarea", "a house")
    page.click("#txt2img_cards button")  # open the accordion (its header is a button)
    page.click("#txt2img_cards_tab_lora-button")
    card = page.locator("#txt2img_cards_lora [data-card-name]").first
    card.wait_for()
    name = card.get_attribute("data-card-name")
    set_slider(page, "#txt2img_cards_weight", 0.7)
    card.click()
    page.wait_for_function(
        "(tag) => document.querySelector('#txt2img_prompt textarea').value === 'a house ' + tag",
        arg=f"<lora:{name}:0.7>",
    )
    card.click()  # again: A1111 takes it out
    page.wait_for_function("document.querySelector('#txt2img_prompt textarea').value === 'a house'")
    shot(page, "lora-cards")
    context.close()


def set_slider(page, selector: str, value: float) -> None:
    field = page.locator(f"{selector} input[type=number]")
    field.fill(str(value))
    field.press("Enter")
    field.blur()
    page.wait_for_function(
        "([s, v]) => Number(document.querySelector(s + ' input[type=number]').value) === v",
        arg=[selector, value],
    )


def test_generate_twice_quickly_queues_two_jobs(browser, server):
    context, page = open_page(browser, server)
    prompt = "two quick clicks"
    # random seeds: two different images. 40 steps: long enough on a quiet machine for the
    # bar to show the second job waiting (8 steps finished between two of its updates once)
    fill_form(page, server, prompt, seed=-1, steps=40)
    page.evaluate(WATCH_WAITING_JS)
    page.click("#txt2img_generate")
    page.click("#txt2img_generate")
    jobs = wait_for_jobs(server, prompt, 2)
    assert len(jobs) == 2 and {job["status"] for job in jobs} == {"done"}, jobs
    wait_for_result(page)
    page.wait_for_function("window.__easel_waiting.statuses.slice(-1)[0] === 'done'")
    watch = page.evaluate("window.__easel_waiting")
    # the bar said that one more job waited behind the first one
    assert watch["most"] == 1, watch
    # the gallery ends with the image of the later job (the API lists the newest first)
    assert f"Seed: {jobs[0]['result']['seeds'][0]}," in page.input_value("#txt2img_info textarea")
    context.close()


def test_ctrl_enter_generates_and_escape_interrupts(browser, server):
    context, page = open_page(browser, server)
    prompt = "keyboard generation"
    fill_form(page, server, prompt, seed=9, steps=150)
    page.focus("#txt2img_prompt textarea")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "Number(document.querySelector('#txt2img_progress [role=progressbar]').getAttribute('aria-valuenow')) > 0",
        timeout=GENERATION_TIMEOUT_MS,
        polling=50,
    )
    assert len(api_jobs(server, prompt)) == 1
    page.keyboard.press("Escape")
    page.wait_for_selector("#txt2img_progress .easel-progress[data-status=interrupted]", timeout=60_000)
    # no toast: nothing covers the buttons after an interrupt
    assert page.locator(".toast-body").count() == 0
    # A1111 returns the image as far as it got: it is in the gallery
    page.wait_for_selector("#txt2img_gallery img", timeout=60_000)
    job = wait_for_jobs(server, prompt, 1)[0]
    assert job["status"] == "interrupted" and len(job["images"]) == 1, job
    context.close()


def test_queue_rows_and_history_browser(browser, server):
    """After the generations above: the Queue tab's rows (short ids, thumbnails, per-row
    open/retry) and the History tab (infotext, send to txt2img, delete to the trash)."""
    context, page = open_page(browser, server)
    page.click("button#tab_queue-button")
    done = page.locator("#queue_table tr[data-status=done]").first
    done.wait_for()
    job_id = done.get_attribute("data-job-id")
    assert len(job_id) == 32 and done.locator("code").inner_text() == job_id[:8]
    assert done.locator("img").count() == 1  # a thumbnail of its image
    done.locator("button[data-action=open]").click()
    page.wait_for_selector("#queue_opened img")
    page.wait_for_function("document.querySelector('#queue_opened_info textarea').value.includes('Seed: ')")
    shot(page, "queue-tab")
    # retry the interrupted job of the keyboard test: it is queued again
    interrupted = page.locator("#queue_table tr[data-status=interrupted]").first
    retried = interrupted.get_attribute("data-job-id")
    interrupted.locator("button[data-action=retry]").click()
    page.wait_for_function(
        "(id) => document.querySelector(`#queue_table tr[data-job-id='${id}']`).dataset.status !== 'interrupted'",
        arg=retried,
    )
    page.click(f"#queue_table tr[data-job-id='{retried}'] button[data-action=cancel]")  # it ran 150 steps

    page.click("button#tab_history-button")
    first = page.locator("#history_gallery img").first
    first.wait_for()
    first.click()
    page.wait_for_function("document.querySelector('#history_info textarea').value.includes('Seed: ')")
    relative = page.input_value("#history_path input")
    prompt = page.input_value("#history_info textarea").splitlines()[0]
    shot(page, "history-tab")
    page.click("#history_send_to_txt2img")
    page.wait_for_function(
        "(p) => document.querySelector('#txt2img_prompt textarea').value === p", arg=prompt
    )
    page.click("button#tab_history-button")
    page.locator("#history_gallery img").first.click()
    page.wait_for_function("(r) => document.querySelector('#history_path input').value === r", arg=relative)
    outputs = server.data_dir / "outputs"
    assert (outputs / relative).is_file()
    page.click("#history_delete")
    page.wait_for_function("document.querySelector('#history_message textarea').value.startsWith('moved to')")
    assert not (outputs / relative).exists() and (outputs / ".trash" / relative).is_file()
    context.close()
