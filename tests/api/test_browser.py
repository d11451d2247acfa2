"""The web page in headless Chromium, driven by Selenium (Debian's chromium, chromium-driver,
python3-selenium; run by tests/integration/test_serve_browser.sh): the DAG list and its
pause switch, the conf validation error shown, a triggered run's progress bar moving to
100 %, the task-instance table and its pager, and a screenshot of the run view."""
import os
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from airflow import Client, finish, ok

BASE = os.environ["SERVE_URL"]
TOKEN = os.environ["API_TOKEN"]
SHOT = os.environ.get("SCREENSHOT", os.path.join(os.environ["T_WORK"], "run-view.png"))
cli = Client(BASE, TOKEN)

opts = webdriver.ChromeOptions()
for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--window-size=1280,900"):
    opts.add_argument(a)
opts.binary_location = "/usr/bin/chromium"
drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
wait = WebDriverWait(drv, 30)


def css(sel):
    return drv.find_element(By.CSS_SELECTOR, sel)


try:
    drv.get(BASE + "/")
    wait.until(lambda d: d.find_elements(By.ID, "load-error") or d.find_elements(By.ID, "dags"))
    ok(bool(drv.find_elements(By.ID, "load-error")), "without a token the page says so")
    css("#token").send_keys(TOKEN)
    css("#save-token").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#dags tr[data-dag="kite_smoke"]'))
    rows = drv.find_elements(By.CSS_SELECTOR, "#dags tbody tr")
    ok(len(rows) >= 3, "the DAG list shows the DAGs", len(rows))

    # The pause switch.
    box = css('input.pause[data-dag="ci_smoke"]')
    box.click()
    deadline = time.time() + 10
    while time.time() < deadline and not cli.get("/api/v2/dags/ci_smoke")[1]["is_paused"]:
        time.sleep(0.1)
    ok(cli.get("/api/v2/dags/ci_smoke")[1]["is_paused"], "the pause switch pauses the DAG")
    css('input.pause[data-dag="ci_smoke"]').click()
    deadline = time.time() + 10
    while time.time() < deadline and cli.get("/api/v2/dags/ci_smoke")[1]["is_paused"]:
        time.sleep(0.1)
    ok(not cli.get("/api/v2/dags/ci_smoke")[1]["is_paused"], "and unpauses it")

    # The trigger form shows the server's conf validation error.
    drv.get(BASE + "/#/dags/kite_smoke")
    wait.until(lambda d: d.find_elements(By.ID, "trigger-conf"))
    conf = css("#trigger-conf")
    conf.clear()
    conf.send_keys('{"limitt": 3}')
    css("#trigger-btn").click()
    wait.until(lambda d: d.find_element(By.ID, "trigger-error").text.strip())
    err = css("#trigger-error").text
    ok("limitt" in err and "unknown" in err, "the conf validation error is shown", err)

    # A run's progress bar, fed by the event stream, moves to 100 %.
    conf = css("#trigger-conf")
    conf.clear()
    conf.send_keys('{"limit": 40}')
    css("#trigger-btn").click()
    wait.until(lambda d: d.find_elements(By.ID, "progress-bar"))
    seen = []
    deadline = time.time() + 180
    while time.time() < deadline:
        v = int(css("#progress-bar").get_attribute("aria-valuenow") or 0)
        if not seen or seen[-1] != v:
            seen.append(v)
        if css("#run-view").get_attribute("data-ended"):
            break
        time.sleep(0.05)
    v = int(css("#progress-bar").get_attribute("aria-valuenow") or 0)
    if seen[-1] != v:
        seen.append(v)
    print("# progress bar values seen: %s" % seen)
    ok(seen == sorted(seen), "the progress bar only moves forward", seen)
    ok(len(seen) >= 3 and seen[-1] == 100, "the progress bar moves to 100 %", seen)
    ok(css("#run-view").get_attribute("data-ended") == "success", "the run view shows success")
    width = css("#progress-bar > div").get_attribute("style")
    ok("100%" in width, "the bar is drawn full", width)

    # The task-instance table and its pager (84 instances, 50 a page).
    wait.until(lambda d: "of 84" in d.find_element(By.ID, "ti-range").text)
    ok(len(drv.find_elements(By.CSS_SELECTOR, "#ti-body tr")) == 50, "a page of 50 task instances")
    css("#ti-next").click()
    wait.until(lambda d: d.find_element(By.ID, "ti-range").text.startswith("51"))
    ok(len(drv.find_elements(By.CSS_SELECTOR, "#ti-body tr")) == 34, "the next page has the rest")
    ok("none" in css("#failed-list").text, "no failed items listed", css("#failed-list").text)
    drv.execute_script("window.scrollTo(0, 0)")
    drv.save_screenshot(SHOT)
    ok(os.path.getsize(SHOT) > 10000, "a screenshot of the run view", SHOT)
finally:
    drv.quit()
finish()
