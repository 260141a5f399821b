"""The web chat at / and the console's sign-in, in headless Chromium against `switchboard serve`:
sign-in (a wrong password refused, then rate-limited), a CSRF-less POST refused, a message whose
answer streams in with its task cards, a reload in the middle of a turn that resumes the
stream, and the stop button. Screenshots of each page's main states go to docs/screenshots/."""

import json
import uuid
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_harness import REPLY, screenshot, wait_until

PASSWORD = "a long enough password"


def all_by_testid(driver, name):
    return driver.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def by_testid(driver, name):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def sign_in(driver, stack, email, password=PASSWORD, path="/", keyboard=False):
    driver.get(stack.url + path)
    wait_until(lambda: by_testid(driver, "login-email").is_displayed(), what="the sign-in form")
    by_testid(driver, "login-email").clear()
    by_testid(driver, "login-email").send_keys(email)
    if keyboard:  # the form works without a mouse: Tab to the password, Enter submits
        by_testid(driver, "login-email").send_keys(Keys.TAB)
        driver.switch_to.active_element.send_keys(password + Keys.ENTER)
        return
    by_testid(driver, "login-password").clear()
    by_testid(driver, "login-password").send_keys(password)
    by_testid(driver, "login-submit").click()


def signed_in(driver, stack, email, keyboard=False):
    sign_in(driver, stack, email, keyboard=keyboard)
    wait_until(lambda: by_testid(driver, "chat-input").is_displayed(), what="the chat after signing in")


def assistant_messages(driver):
    return [m for m in all_by_testid(driver, "message") if m.get_attribute("data-role") == "assistant"]


def last_answer(driver):
    answers = assistant_messages(driver)
    return answers[-1].find_element(By.CSS_SELECTOR, ".content").text if answers else ""


def send(driver, text):
    box = by_testid(driver, "chat-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # Enter sends; the keyboard is enough


def fetch(driver, method, path, body=None, csrf=None):
    """A request made by page script with the page's cookie; answers [status, json]."""
    return driver.execute_async_script(
        """
        const [method, path, body, csrf, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        if (csrf) headers["X-CSRF-Token"] = csrf;
        fetch(path, {method, headers, credentials: "same-origin", body: body === null ? undefined : JSON.stringify(body)})
          .then(async r => done([r.status, await r.json().catch(() => null)]));
        """, method, path, body, csrf)


def test_a_wrong_password_is_refused_then_rate_limited(stack, browser):
    email = stack.create_user(PASSWORD)
    sign_in(browser, stack, email, "not the password")
    error = by_testid(browser, "login-error")
    wait_until(lambda: error.text == "Wrong email or password.", what="the refusal")
    assert by_testid(browser, "chat-input").is_displayed() is False
    screenshot(browser, "signin-refused.png")
    # The account allows three tries at a time; the fourth is refused before any password check,
    # even the right one.
    for _ in range(2):
        sign_in(browser, stack, email, "not the password")
        wait_until(lambda: by_testid(browser, "login-error").text == "Wrong email or password.", what="a refusal")
    sign_in(browser, stack, email, PASSWORD)
    wait_until(lambda: by_testid(browser, "login-error").text.startswith("Too many attempts."), what="the rate limit")
    assert not by_testid(browser, "chat-input").is_displayed()
    screenshot(browser, "signin-rate-limited.png")


def test_passwords_come_from_standard_input_only(stack):
    email = stack.create_user(PASSWORD)
    assert stack.login(email, PASSWORD) == 200
    refused = stack.cli(["users", "passwd", "--email", email], stdin="short\n")
    assert refused.returncode != 0 and "too short" in refused.stderr
    assert stack.cli(["users", "passwd", "--email", email, "--password", "x" * 12]).returncode != 0, "no password in argv"
    changed = stack.cli(["users", "passwd", "--email", email], stdin="a brand new passphrase\n")
    assert changed.returncode == 0, changed.stderr
    assert "a brand new passphrase" not in changed.stdout + changed.stderr
    assert stack.login(email, PASSWORD) == 401
    assert stack.login(email, "a brand new passphrase") == 200
    assert stack.cli(["users", "passwd", "--email", "nobody@example.com"], stdin="a brand new passphrase\n").returncode != 0


def test_a_post_without_the_csrf_token_is_refused(stack, browser):
    email = stack.create_user(PASSWORD)
    browser.get(stack.url + "/")
    wait_until(lambda: by_testid(browser, "login-email").is_displayed(), what="the sign-in form")
    screenshot(browser, "signin.png")
    signed_in(browser, stack, email)
    status, body = fetch(browser, "POST", "/api/v1/chats", {"title": "forged"})
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, session = fetch(browser, "GET", "/api/v1/auth/session")
    assert status == 200 and session["user"]["email"] == email
    status, _ = fetch(browser, "POST", "/api/v1/chats", {"title": "real"}, csrf=session["csrfToken"])
    assert status == 201
    status, chats = fetch(browser, "GET", "/api/v1/chats")
    assert [chat["title"] for chat in chats["data"]] == ["real"]
    # The cookie is HttpOnly: page script cannot read it.
    assert "sb_session" not in browser.execute_script("return document.cookie")


def test_the_answer_streams_in_with_task_cards_and_text_stays_text(stack, browser):
    email = stack.create_user(PASSWORD)
    signed_in(browser, stack, email, keyboard=True)
    question = "Could you plan this: summarize <b>my</b> note and then reply?"
    send(browser, question)
    wait_until(lambda: len(all_by_testid(browser, "task-card")) == 2, what="two task cards")
    wait_until(lambda: last_answer(browser) == REPLY, what="the whole answer")
    wait_until(lambda: [c.get_attribute("data-state") for c in all_by_testid(browser, "task-card")] == ["done", "done"], what="both tasks done")
    cards = all_by_testid(browser, "task-card")
    assert [c.get_attribute("data-node-id") for c in cards] == ["sum", "answer"]
    assert "summarize" in cards[0].text and "compose_reply" in cards[1].text
    mine = [m for m in all_by_testid(browser, "message") if m.get_attribute("data-role") == "user"][-1]
    assert question in mine.text
    assert mine.find_elements(By.TAG_NAME, "b") == [], "message text is never markup"
    # The stream's `complete` ends the turn: the stop button goes, sending is possible again.
    wait_until(lambda: not by_testid(browser, "stop").is_displayed(), what="the end of the turn")
    assert by_testid(browser, "chat-send").is_enabled()
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#chat-list button")) == 1, what="the chat in the list")
    screenshot(browser, "chat-answer.png")

    # Reopening the chat shows both messages from the API.
    browser.refresh()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#chat-list button"), what="the chat list again")[0].click()
    wait_until(lambda: last_answer(browser) == REPLY, what="the stored answer")


def test_a_reload_in_the_middle_of_a_turn_resumes_the_stream(stack, browser):
    email = stack.create_user(PASSWORD)
    signed_in(browser, stack, email)
    send(browser, "Please plan a reply and answer slowly, would you?")
    wait_until(lambda: len(last_answer(browser).split()) >= 4, what="the first words")
    partial = last_answer(browser)
    screenshot(browser, "chat-streaming.png")
    assert len(partial) < len(REPLY)
    browser.refresh()
    # The page picks the turn up where it was: the words so far at once, the rest from the
    # stream after the last event id it kept; nothing twice, nothing missing.
    wait_until(lambda: by_testid(browser, "chat-input").is_displayed(), what="the page after the reload")
    wait_until(lambda: last_answer(browser).startswith(partial), what="the words seen before the reload")
    wait_until(lambda: last_answer(browser) == REPLY, timeout=60, what="the whole answer after the reload")
    assert len(assistant_messages(browser)) == 1
    assert len(all_by_testid(browser, "task-card")) == 2


def test_stop_ends_a_turn(stack, browser):
    email = stack.create_user(PASSWORD)
    signed_in(browser, stack, email)
    send(browser, "Answer slowly please, I may stop you?")
    wait_until(lambda: len(last_answer(browser).split()) >= 2, what="the first words")
    stop = by_testid(browser, "stop")
    assert stop.is_displayed()
    stop.click()
    wait_until(lambda: "Stopped." in assistant_messages(browser)[-1].text, what="the stop")
    assert not by_testid(browser, "stop").is_displayed()
    assert last_answer(browser) != REPLY
    screenshot(browser, "chat-stopped.png")
    status, chats = fetch(browser, "GET", "/api/v1/chats")
    status, messages = fetch(browser, "GET", f"/api/v1/chats/{chats['data'][0]['id']}/messages")
    assert [m["status"] for m in messages["data"] if m["role"] == "user"] == ["cancelled"]


def test_the_console_signs_operators_in(stack, browser):
    email = stack.create_user(PASSWORD, role="operator")
    sign_in(browser, stack, email, path="/console")
    wait_until(lambda: by_testid(browser, "session-list").is_displayed() or browser.find_element(By.ID, "app").is_displayed(),
               what="the console")
    assert email in browser.find_element(By.ID, "who").text
    screenshot(browser, "console.png")


def test_pages_are_served_with_a_strict_policy(stack):
    with urllib.request.urlopen(stack.url + "/") as response:
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["ETag"]


def test_a_file_attached_in_the_chat_is_sent_with_the_message_and_cited(stack, browser, tmp_path):
    email = stack.create_user(PASSWORD)
    signed_in(browser, stack, email)
    marker = uuid.uuid4().hex[:8]
    name = f"lighthouse-{marker}.txt"
    document = tmp_path / name
    document.write_text(f"The lighthouse keeper's secret word is ZEPHYR-{marker}. Nobody else knows it.\n")
    # The attach control is a labelled file input: picking a file uploads it at once.
    attach = by_testid(browser, "chat-attach")
    label = browser.find_element(By.CSS_SELECTOR, 'label[for="chat-attach"]')
    assert label.text == "Attach a file"
    attach.send_keys(str(document))
    chip = wait_until(lambda: all_by_testid(browser, "file-chip"), what="the file chip")[0]
    assert name in chip.text
    wait_until(lambda: chip.get_attribute("data-status") == "indexed", timeout=60, what="the file indexed")
    file_id = int(chip.get_attribute("data-file-id"))
    screenshot(browser, "chat-attach.png")

    send(browser, "What is the lighthouse keeper's secret word?")
    wait_until(lambda: last_answer(browser) == REPLY, what="the answer")
    # The chips went with the message; the message names its file and the answer cites it.
    assert all_by_testid(browser, "file-chip") == []
    mine = [m for m in all_by_testid(browser, "message") if m.get_attribute("data-role") == "user"][-1]
    assert name in by_testid(mine, "message-files").text
    sources = wait_until(lambda: all_by_testid(browser, "source"), what="the answer's sources")
    assert [s.text for s in sources] == [name]
    assert sources[0].get_attribute("data-file-id") == str(file_id)
    screenshot(browser, "chat-sources.png")

    # The API shows the message carrying the file, and the reply's sources naming it.
    status, chats = fetch(browser, "GET", "/api/v1/chats")
    status, messages = fetch(browser, "GET", f"/api/v1/chats/{chats['data'][0]['id']}/messages")
    asked = [m for m in messages["data"] if m["role"] == "user"][0]
    status, detail = fetch(browser, "GET", f"/api/v1/messages/{asked['id']}")
    assert status == 200
    assert detail["fileIds"] == [file_id]
    assert [s["name"] for s in detail["sources"]] == [name]


def test_a_file_name_is_shown_as_text_and_a_refused_upload_says_why(stack, browser, tmp_path):
    email = stack.create_user(PASSWORD)
    signed_in(browser, stack, email)
    name = "<img src=x onerror=alert(1)>.txt"
    document = tmp_path / "plain.txt"
    document.write_text("Some notes.\n")
    renamed = tmp_path / name.replace("/", "_")
    document.rename(renamed)
    by_testid(browser, "chat-attach").send_keys(str(renamed))
    chip = wait_until(lambda: all_by_testid(browser, "file-chip"), what="the file chip")[0]
    assert renamed.name in chip.text
    assert chip.find_elements(By.TAG_NAME, "img") == [], "a file name is never markup"
    # An empty file is refused by the API; the chip says so and it is not sent.
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    by_testid(browser, "chat-attach").send_keys(str(empty))
    wait_until(lambda: any(c.get_attribute("data-status") == "failed" for c in all_by_testid(browser, "file-chip")), what="the refusal")
    failed = [c for c in all_by_testid(browser, "file-chip") if c.get_attribute("data-status") == "failed"][0]
    assert "empty" in failed.text
