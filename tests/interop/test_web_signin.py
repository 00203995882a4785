"""The web pages under OAuth, in a real browser: headless Chromium signs in
through a real authorization server (the npm package `oidc-provider`, with
dynamic registration, PKCE required and resource indicators) with the
authorization code flow and PKCE that the page runs, then tries tools as
that person; each person's forms run only the tools their sign-in allows,
and signing out forgets the token."""

import base64
import json
import re
import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_oauth import OIDC_PROVIDER, served_with_provider
from test_web import browser, form_of, open_page, outcome_of, shot  # noqa: F401 (a fixture)

# hal gets `tools:hello` (the one scope the pages ask for); only members of
# `admins` (the provider's users whose name starts with `admin`) may call
# everything.
ACCESS = """
[[allow]]
scopes = ["tools:hello"]
tools = ["examples.hello.*"]

[[allow]]
groups = ["admins"]
tools = ["*"]
"""


def wait(driver, condition, seconds=30):
    return WebDriverWait(driver, seconds).until(lambda _: condition())


def sign_in(driver, issuer, user):
    """Presses Sign in and does on the issuer's pages what a person would:
    signs in as `user` and, when asked, consents."""
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda: driver.current_url.startswith(issuer) and driver.find_elements(By.NAME, "login"))
    driver.find_element(By.NAME, "login").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys("any")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(driver, lambda: not driver.current_url.startswith(issuer) or not driver.find_elements(By.NAME, "login"))
    if driver.current_url.startswith(issuer):
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait(driver, lambda: not driver.current_url.startswith(issuer))


def run(driver, tool, name):
    form = form_of(driver, tool)
    field = form.find_element(By.CSS_SELECTOR, '[data-arg="name"], [data-arg="text"]')
    field.clear()
    field.send_keys(name)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return outcome_of(driver, form)


@pytest.mark.skipif(not OIDC_PROVIDER, reason="needs TOOLMESH_OIDC_PROVIDER (scripts/test.sh installs it)")
def test_people_sign_in_on_the_pages_and_try_what_they_may_call(tmp_path, browser):  # noqa: F811
    with served_with_provider(tmp_path, "tools:hello", access=ACCESS) as (base, issuer, log):
        open_page(browser, base + "/tools/examples/hello", "#sign-in")
        entry = json.loads(browser.find_element(By.ID, "client-entry").text)
        assert "headers" not in entry["mcpServers"]["toolmesh"], "OAuth clients sign in; no key to paste"
        # Signed out, a call is refused with a word about signing in.
        area = run(browser, "examples.hello.greet", "Ada")
        assert "sign in" in area.find_element(By.CSS_SELECTOR, ".error-title").text
        shot(browser, "10-sign-in-offered")

        sign_in(browser, issuer, "hal")
        wait(browser, lambda: browser.current_url == base + "/tools/examples/hello")
        wait(browser, lambda: browser.find_element(By.ID, "signed-in").is_displayed())
        area = run(browser, "examples.hello.greet", "Hal")
        assert "Hello, Hal!" in area.find_element(By.CSS_SELECTOR, "pre.text").text
        browser.execute_script("arguments[0].scrollIntoView()", browser.find_element(By.ID, "account"))
        shot(browser, "11-signed-in")
        token = browser.execute_script("return JSON.parse(sessionStorage.getItem('toolmesh.token')).token")
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["sub"] == "hal" and claims["aud"] == f"{base}/mcp", claims
        assert re.search(r"caller=hal tool=examples\.hello\.greet", log.read_text())

        # hal's sign-in does not reach the text tools: their forms say so.
        open_page(browser, base + "/tools/examples/text", "#signed-in")
        form = form_of(browser, "examples.text.slugify")
        wait(browser, lambda: form.find_element(By.CSS_SELECTOR, ".not-allowed").is_displayed())
        assert not form.find_element(By.CSS_SELECTOR, "button[type=submit]").is_enabled()
        browser.execute_script("arguments[0].scrollIntoView()", form)
        shot(browser, "12-not-allowed")

        # Signing out forgets the token; an admin may call everything.
        browser.find_element(By.ID, "sign-out").click()
        assert browser.execute_script("return sessionStorage.getItem('toolmesh.token')") is None
        assert browser.find_element(By.ID, "sign-in").is_displayed()
        browser.get(issuer + "/.well-known/openid-configuration")
        browser.delete_all_cookies()  # the issuer's session: sign in as someone else
        open_page(browser, base + "/tools/examples/text", "#sign-in")
        sign_in(browser, issuer, "admin-ada")
        wait(browser, lambda: browser.current_url == base + "/tools/examples/text")
        wait(browser, lambda: browser.find_element(By.ID, "signed-in").is_displayed())
        area = run(browser, "examples.text.slugify", "Déjà Vu")
        assert "deja-vu" in area.find_element(By.CSS_SELECTOR, "pre.text").text

        # A code exchange from another origin is refused, and a
        # made-up code is refused by the issuer.
        for origin, status in [("http://evil.example", 403), (base, 502)]:
            request = urllib.request.Request(
                base + "/signin/token", method="POST", headers={"content-type": "application/json", "origin": origin},
                data=json.dumps({"code": "made-up", "code_verifier": "v" * 43}).encode())
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == status, refused.value.read()
