"""The marketplace pages in a real browser: headless Chromium (Debian's
`chromium` and `chromium-driver`, driven by Selenium; nothing downloads a
browser) against a fresh `tool serve`, as a new user meets it: search, open
a tool, read what it may do, run it through the form, copy its client entry
into an MCP client that then calls it; a denied call; a gateway with API
keys; a tool whose metadata and output carry markup.

Screenshots are kept in $TOOLMESH_ARTIFACTS/web (default:
target/test-artifacts/web)."""

import json
import os
import pathlib
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import COMPONENTS, TOOL, publish_to, start_gateway

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = pathlib.Path(os.environ.get("TOOLMESH_ARTIFACTS", pathlib.Path(__file__).parents[2] / "target/test-artifacts")) / "web"
MARKUP = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>bold</b>'


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("Chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]:
        options.add_argument(flag)
    os.environ["SE_OFFLINE"] = "true"  # Selenium must never fetch a driver
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def open_page(driver, url, ready="main h1"):
    """Loads `url` and waits (bounded) until the element `ready` is there."""
    driver.get(url)
    WebDriverWait(driver, 20).until(lambda _: driver.find_elements(By.CSS_SELECTOR, ready))


def open_until(driver, url, ready, seconds=15):
    """Loads `url` again (bounded) until it has `ready`: a tool just
    published reaches the gateway's catalog a moment after the registry."""
    import time
    deadline = time.monotonic() + seconds
    while True:
        driver.get(url)
        if driver.find_elements(By.CSS_SELECTOR, ready) or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def outcome_of(driver, form, seconds=60):
    """The outcome area of `form` once a call has finished (bounded wait)."""
    area = form.find_element(By.CSS_SELECTOR, ".outcome")
    WebDriverWait(driver, seconds).until(
        lambda _: area.find_elements(By.CSS_SELECTOR, ".result-title, .error-title"))
    return area


def form_of(driver, tool):
    return driver.find_element(By.CSS_SELECTOR, f'form.try[data-tool="{tool}"]')


def test_a_new_user_finds_judges_tries_and_adds_a_tool(tmp_path, browser):
    with start_gateway(tmp_path) as (base, data, _, _proc):
        open_page(browser, base + "/", ".card")
        assert browser.title == "toolmesh: tools for AI agents"
        cards = browser.find_elements(By.CSS_SELECTOR, ".card")
        listed = {c.find_element(By.CSS_SELECTOR, "h2 a").text for c in cards}
        assert {"examples/text", "examples/hello", "examples/fetch"} <= listed, listed
        shot(browser, "01-home")

        # Search, by a tool's name; the package that has it comes first.
        box = browser.find_element(By.ID, "q")
        box.send_keys("slugify")
        box.submit()
        WebDriverWait(browser, 10).until(expected_conditions.title_contains("slugify"))
        first = browser.find_element(By.CSS_SELECTOR, ".card h2 a")
        assert first.text == "examples/text"
        shot(browser, "02-search")
        first.click()

        # What it may do, who signed it, its versions.
        WebDriverWait(browser, 10).until(expected_conditions.title_contains("examples/text"))
        assert browser.find_element(By.ID, "permissions").text.startswith("Asks for nothing")
        assert "This node grants all of it" in browser.page_source
        # The examples are signed by the server's own key, which owns `examples`.
        signature = browser.find_element(By.ID, "signature").text
        assert signature.startswith("Signed by key "), signature
        assert "an owner of the namespace examples" in signature, signature
        assert browser.find_element(By.ID, "owners").text.startswith("Only the owners of examples may publish in it")
        head = urllib.request.Request(f"{base}/v2/examples/text/manifests/0.1.0", method="HEAD", headers={
            "accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(head) as response:
            digest = response.headers["Docker-Content-Digest"]
        rows = browser.find_elements(By.CSS_SELECTOR, "#version-table tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows] == ["0.1.0"]
        assert rows[0].find_elements(By.TAG_NAME, "td")[4].text == digest
        assert rows[0].find_elements(By.TAG_NAME, "td")[2].text.endswith(("kB", "MB", "bytes"))
        assert rows[0].find_elements(By.TAG_NAME, "td")[1].text.endswith("UTC")

        # Every input of every form has a label.
        unlabelled = browser.execute_script("""
            return [...document.querySelectorAll('form.try input, form.try select, form.try textarea')]
                .filter(e => !document.querySelector('label[for="' + e.id + '"]')).map(e => e.id);""")
        assert unlabelled == []

        # Try it: the form calls the tool through /mcp.
        form = form_of(browser, "examples.text.slugify")
        browser.execute_script("arguments[0].scrollIntoView()", form)
        field = form.find_element(By.CSS_SELECTOR, '[data-arg="text"]')
        field.send_keys("Hello, Wide World!")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, ".result-title").text == "Result"
        assert "hello-wide-world" in area.find_element(By.CSS_SELECTOR, "pre.text").text
        shot(browser, "03-tried")

        # Arguments that do not fit the schema get a readable error.
        form = form_of(browser, "examples.text.count")
        form.find_element(By.CSS_SELECTOR, "details.raw summary").click()
        raw = form.find_element(By.CSS_SELECTOR, "textarea.raw-json")
        raw.clear()
        raw.send_keys('{"txt": "no such argument"}')
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, ".error-title").text == "The arguments do not fit this tool"
        assert "required" in area.find_element(By.CSS_SELECTOR, ".error-detail").text

        # The counters on the page now show the call.
        open_page(browser, base + "/tools/examples/text", "#tool-slugify .stats")
        stats = browser.find_element(By.CSS_SELECTOR, "#tool-slugify .stats").text
        assert stats.startswith("On this gateway: 1 call, 0% errors, median "), stats

        # The client entry, pasted into an MCP client, calls the tool.
        entry = json.loads(browser.find_element(By.ID, "client-entry").text)
        url = entry["mcpServers"]["toolmesh"]["url"]
        assert url == base + "/mcp"
        assert call_with_sdk(url, "examples.text.slugify", {"text": "From The Entry"}) == "from-the-entry"

        # A denied call: the node does not grant the fetch tool's hosts.
        open_page(browser, base + "/tools/examples/fetch", "#permissions")
        assert "Connects to the internet: makes GET requests to https://example.com." in browser.page_source
        assert "This node does not grant" in browser.find_element(By.CSS_SELECTOR, ".refused").text
        form = form_of(browser, "examples.fetch.fetch")
        form.find_element(By.CSS_SELECTOR, '[data-arg="url"]').send_keys("https://example.com/")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, ".error-title").text == "The call failed"
        assert "this node does not grant" in area.text
        shot(browser, "04-denied")

        # A new publisher with nothing but the file (the registry and the
        # server's data directory are where a user's defaults would point).
        greeter = tmp_path / "greeter.wasm"
        shutil.copy(COMPONENTS / "hello.wasm", greeter)
        done = subprocess.run([TOOL, "publish", str(greeter)], capture_output=True, text=True, timeout=120, env={
            **os.environ, "TOOLMESH_CONFIG_DIR": str(tmp_path / "newcomer"), "TOOLMESH_DATA": str(data),
            "TOOLMESH_REGISTRY": base})
        assert done.returncode == 0 and done.stdout.startswith("local/greeter:0.1.0@sha256:"), done.stderr
        open_page(browser, base + "/?q=greeter", ".card")
        browser.find_element(By.CSS_SELECTOR, ".card h2 a").click()
        WebDriverWait(browser, 10).until(expected_conditions.title_contains("local/greeter"))
        open_until(browser, base + "/tools/local/greeter", 'form[data-tool="local.greeter.greet"]')
        assert "an owner of the namespace local" in browser.find_element(By.ID, "signature").text
        form = form_of(browser, "local.greeter.greet")
        form.find_element(By.CSS_SELECTOR, '[data-arg="name"]').send_keys("newcomer")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        assert "Hello, newcomer!" in outcome_of(browser, form).find_element(By.CSS_SELECTOR, "pre.text").text

        # On a phone: nothing is wider than the screen.
        browser.set_window_size(390, 844)
        open_page(browser, base + "/tools/examples/text", "#permissions")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
        shot(browser, "05-phone")


def call_with_sdk(url, tool, arguments):
    """One call with the official Python MCP SDK over streamable HTTP; its text."""
    import anyio
    import mcp

    async def go():
        async with mcp.Client(url, mode="auto") as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result
            return result.content[0].text

    return anyio.run(go)


def test_markup_in_metadata_and_output_stays_text_and_progress_shows(tmp_path, browser):
    with start_gateway(tmp_path) as (base, data, _, _proc):
        publish_to(base, data, COMPONENTS / "hostile.wasm", "evil/markup", "1.0.0", "--description", MARKUP)
        open_page(browser, base + "/?q=evil", ".card")
        card = browser.find_element(By.CSS_SELECTOR, ".card")
        assert card.find_element(By.CSS_SELECTOR, ".description").text == MARKUP
        assert not card.find_elements(By.TAG_NAME, "img") and not card.find_elements(By.TAG_NAME, "b")
        open_page(browser, base + "/tools/evil/markup", "#permissions")
        assert browser.find_element(By.CSS_SELECTOR, ".lead").text == MARKUP

        # Another publisher cannot replace it: the namespace is the first one's.
        stranger = tmp_path / "stranger"
        done = subprocess.run(
            [TOOL, "publish", str(COMPONENTS / "hello.wasm"), "--name", "evil/markup", "--version", "1.0.1",
             "--description", "taken over", "--registry", base, "--token", (data / "push-token").read_text().strip()],
            capture_output=True, text=True, timeout=120, env={**os.environ, "TOOLMESH_CONFIG_DIR": str(stranger)})
        assert done.returncode == 1 and "namespace `evil` belongs to other publishers" in done.stderr, done.stderr
        open_page(browser, base + "/tools/evil/markup", "#permissions")
        assert browser.find_element(By.CSS_SELECTOR, ".lead").text == MARKUP
        assert "an owner of the namespace evil" in browser.find_element(By.ID, "signature").text

        # A tool's output with markup is shown as text.
        form = form_of(browser, "evil.markup.echo")
        form.find_element(By.CSS_SELECTOR, '[data-arg="text"]').send_keys(MARKUP)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, "pre.text").text == MARKUP
        assert not area.find_elements(By.TAG_NAME, "img") and not area.find_elements(By.TAG_NAME, "script")
        assert browser.execute_script("return window.__xss") is None
        shot(browser, "06-markup")

        # Progress reports stream to the page.
        form = form_of(browser, "evil.markup.progress")
        form.find_element(By.CSS_SELECTOR, '[data-arg="steps"]').send_keys("3")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert "3 steps" in area.find_element(By.CSS_SELECTOR, "pre.text").text
        assert area.find_element(By.CSS_SELECTOR, ".progress-note").text == "Progress reports: 3 (the last: step 3)"
        assert browser.execute_script("return window.__xss") is None

        # An image result is shown as an image (a 1x1 red PNG).
        publish_to(base, data, COMPONENTS / "conformance.wasm", "fixtures/mcp", "1.0.0")
        open_until(browser, base + "/tools/fixtures/mcp", 'form[data-tool="fixtures.mcp.test_image_content"]')
        form = form_of(browser, "fixtures.mcp.test_image_content")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        image = outcome_of(browser, form).find_element(By.TAG_NAME, "img")
        assert image.get_attribute("src").startswith("data:image/png;base64,")
        assert browser.execute_script("return arguments[0].naturalWidth", image) == 1
        shot(browser, "08-image")

        # The page itself forbids inline script.
        with urllib.request.urlopen(base + "/tools/evil/markup") as response:
            policy = response.headers["Content-Security-Policy"]
            html = response.read().decode()
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        at = html.find("<script>window.__xss")
        assert at < 0, html[max(0, at - 300):at + 100]
        assert "&#60;script&#62;window.__xss" in html


def test_a_gateway_with_api_keys_asks_the_page_for_one(tmp_path, browser):
    with start_gateway(tmp_path, "--api-key", "page-key") as (base, data, _, _proc):
        open_page(browser, base + "/tools/examples/hello", "#client-entry")
        entry = json.loads(browser.find_element(By.ID, "client-entry").text)
        assert entry["mcpServers"]["toolmesh"]["headers"] == {"Authorization": "Bearer YOUR_API_KEY"}
        form = form_of(browser, "examples.hello.greet")
        form.find_element(By.CSS_SELECTOR, '[data-arg="name"]').send_keys("Ada")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, ".error-title").text.startswith("This gateway needs an API key")
        shot(browser, "07-key-needed")
        form.find_element(By.CSS_SELECTOR, ".api-key").send_keys("wrong-key")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert area.find_element(By.CSS_SELECTOR, ".error-title").text.startswith("This gateway needs an API key")
        key = form.find_element(By.CSS_SELECTOR, ".api-key")
        key.clear()
        key.send_keys("page-key")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        area = outcome_of(browser, form)
        assert "Ada" in area.find_element(By.CSS_SELECTOR, "pre.text").text


def test_a_registry_alone_shows_its_tools_but_no_forms(registry, tmp_path):
    from conftest import tool
    published = tool(registry, "publish", str(COMPONENTS / "hello.wasm"), "--name", "acme/hello", "--version", "1.0.0")
    assert published.returncode == 0, published.stderr
    with urllib.request.urlopen(f"http://{registry}/?q=hello") as response:
        assert 'href="/tools/acme/hello"' in response.read().decode()
    with urllib.request.urlopen(f"http://{registry}/tools/acme/hello") as response:
        page = response.read().decode()
    assert "This server is a registry" in page and 'class="try"' not in page
    assert "Signed by key" in page and "an owner of the namespace <code>acme</code>" in page
    assert f"tool pull --registry http://{registry} acme/hello:1.0.0@sha256:" in page
    try:
        urllib.request.urlopen(f"http://{registry}/tools/acme/nothing")
        raise AssertionError("a missing package must be a 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404 and "no tool is published as acme/nothing" in e.read().decode()


def test_behind_a_proxy_the_pages_name_the_public_url_and_it_may_call(tmp_path):
    public = "https://tools.example.com"
    with start_gateway(tmp_path, "--public-url", public + "/") as (base, data, _, _proc):
        with urllib.request.urlopen(base + "/tools/examples/hello") as response:
            page = response.read().decode()
        assert f"{public}/mcp" in page and f"tool pull --registry {public} examples/hello" in page
        assert "127.0.0.1" not in page
        # The page's form, served from there, calls /mcp with that origin and host.
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "examples.hello.greet", "arguments": {"name": "proxy"},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
        headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call",
                   "mcp-name": "examples.hello.greet", "origin": public, "host": "tools.example.com"}
        request = urllib.request.Request(base + "/mcp", data=body, method="POST", headers=headers)
        with urllib.request.urlopen(request) as response:
            assert json.loads(response.read())["result"]["content"][0]["text"] == "Hello, proxy!"
        # Another origin is still refused.
        request = urllib.request.Request(base + "/mcp", data=body, method="POST",
                                         headers={**headers, "origin": "https://evil.example"})
        try:
            urllib.request.urlopen(request)
            raise AssertionError("a foreign origin must be refused")
        except urllib.error.HTTPError as e:
            assert e.code == 403


def test_a_tool_that_asks_gets_a_form_and_the_answer(tmp_path, browser):
    """The try-it form of a tool that asks the user shows the question as a
    form; the answer sent, the call runs again and its result shows; a
    declined form reaches the tool too. Audio and embedded resources show."""
    with start_gateway(tmp_path) as (base, data, _, _):
        publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/fixtures", "1.0.0")
        tool = "acme.fixtures.test_input_required_result_elicitation"
        open_until(browser, base + "/tools/acme/fixtures", f'form[data-tool="{tool}"]')
        form = form_of(browser, tool)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        asked = WebDriverWait(browser, 30).until(
            lambda _: form.find_elements(By.CSS_SELECTOR, 'fieldset[data-question="user_name"]'))[0]
        assert asked.find_element(By.TAG_NAME, "legend").text == "What is your name?"
        asked.find_element(By.CSS_SELECTOR, '[data-answer="name"]').send_keys("Ada")
        shot(browser, "06-asked")
        form.find_element(By.CSS_SELECTOR, "button.answer").click()
        assert "Hello, Ada!" in outcome_of(browser, form).find_element(By.CSS_SELECTOR, "pre.text").text

        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda _: form.find_elements(By.CSS_SELECTOR, "button.decline"))
        form.find_element(By.CSS_SELECTOR, "button.decline").click()
        assert "Hello, (declined)!" in outcome_of(browser, form).find_element(By.CSS_SELECTOR, "pre.text").text

        audio = form_of(browser, "acme.fixtures.test_audio_content")
        audio.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        assert outcome_of(browser, audio).find_elements(By.TAG_NAME, "audio")
        mixed = form_of(browser, "acme.fixtures.test_multiple_content_types")
        mixed.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        texts = [p.text for p in outcome_of(browser, mixed).find_elements(By.CSS_SELECTOR, "pre.text")]
        assert any(t.startswith("test://mixed-content-resource") for t in texts), texts
