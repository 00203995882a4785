// toolmesh marketplace: the "try it" forms and copy buttons.
//
// A form calls its tool through this server's own /mcp endpoint, as any MCP
// client does (protocol 2026-07-28: one POST per call, progress streamed as
// server-sent events), so the gateway's Origin and Host checks, API keys,
// sign-in and rate limits apply to it. Whatever a tool returns is put on the
// page as text (textContent), never parsed as HTML.
//
// Where the server signs people in with the team's identity provider, the
// page is an OAuth public client: authorization code with PKCE (S256). The
// verifier and state stay in this tab's session storage; the server tells
// the page where to send the person (/signin/config) and relays the code
// exchange (/signin/token); the access token is kept in session storage
// for this tab alone, and sent only to /mcp.
"use strict";

(function () {
  const PROTOCOL = "2026-07-28";
  const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
  const TOKEN = "toolmesh.token";
  const PENDING = "toolmesh.signin";
  let nextId = 1;

  /** Bytes as base64url without padding. */
  function base64url(bytes) {
    let text = "";
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  /** The access token of this tab's sign-in, while it is valid. */
  function signedInToken() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(TOKEN) || "null");
      if (saved && typeof saved.token === "string" && saved.expires > Date.now()) return saved.token;
    } catch (e) {
      /* nothing usable saved */
    }
    sessionStorage.removeItem(TOKEN);
    return null;
  }

  /** Sends the person to the issuer's sign-in page (authorization code + PKCE). */
  async function signIn() {
    const answer = await fetch("/signin/config", { headers: { accept: "application/json" } });
    const config = await answer.json();
    if (!answer.ok) throw new Error(config.error || "The sign-in is not available (HTTP " + answer.status + ").");
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
    const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
    sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: location.pathname + location.search }));
    const url = new URL(config.authorization_endpoint);
    const params = {
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: config.redirect_uri,
      scope: config.scope,
      state,
      code_challenge: challenge,
      code_challenge_method: "S256",
      resource: config.resource,
    };
    for (const [name, value] of Object.entries(params)) if (value) url.searchParams.set(name, value);
    location.assign(url.toString());
  }

  /** On /signed-in: exchanges the code, keeps the token, goes back. */
  async function finishSignIn() {
    const status = document.getElementById("signing-in");
    const query = new URLSearchParams(location.search);
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    } catch (e) {
      /* none */
    }
    sessionStorage.removeItem(PENDING);
    if (query.get("error")) {
      status.textContent = "The sign-in did not happen: " + (query.get("error_description") || query.get("error"));
      return;
    }
    if (!pending || !query.get("code") || query.get("state") !== pending.state) {
      status.textContent = "This sign-in was not started from this tab; start it again from a tool's page.";
      return;
    }
    const answer = await fetch("/signin/token", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ code: query.get("code"), code_verifier: pending.verifier }),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok || typeof body.access_token !== "string") {
      status.textContent = "The sign-in failed: " + (body.error || "HTTP " + answer.status);
      return;
    }
    const lifetime = typeof body.expires_in === "number" ? body.expires_in : 3600;
    sessionStorage.setItem(TOKEN, JSON.stringify({ token: body.access_token, expires: Date.now() + lifetime * 1000 }));
    location.replace(pending.back && pending.back.startsWith("/") && !pending.back.startsWith("//") ? pending.back : "/");
  }

  /** The tool names this sign-in may call (the gateway lists only those). */
  async function allowedTools(token) {
    const response = await fetch("/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-protocol-version": PROTOCOL,
        "mcp-method": "tools/list",
        authorization: "Bearer " + token,
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: nextId++,
        method: "tools/list",
        params: { _meta: { "io.modelcontextprotocol/protocolVersion": PROTOCOL, "io.modelcontextprotocol/clientCapabilities": {} } },
      }),
    });
    if (response.status === 401) return null;
    const message = response.ok ? await response.json().catch(() => ({})) : {};
    // Busy, rate-limited or failing: say nothing about the forms.
    if (!message.result || !Array.isArray(message.result.tools)) return undefined;
    return new Set(message.result.tools.map((t) => t.name));
  }

  /** Shows whether this tab is signed in, and which forms its sign-in may run. */
  async function showAccount() {
    const account = document.getElementById("account");
    if (!account) return;
    const problem = document.getElementById("account-error");
    const token = signedInToken();
    document.getElementById("signed-out").hidden = !!token;
    document.getElementById("signed-in").hidden = !token;
    for (const form of document.querySelectorAll("form.try")) {
      form.querySelector(".not-allowed").hidden = true;
      delete form.dataset.notAllowed;
      form.querySelector("button[type=submit]").disabled = false;
    }
    if (!token) return;
    let allowed;
    try {
      allowed = await allowedTools(token);
    } catch (e) {
      return;
    }
    if (allowed === null) {
      sessionStorage.removeItem(TOKEN);
      problem.textContent = "Your sign-in has expired: sign in again.";
      problem.hidden = false;
      return showAccount();
    }
    if (allowed === undefined) return;
    for (const form of document.querySelectorAll("form.try")) {
      if (allowed.has(form.dataset.tool)) continue;
      // An API key typed into the form may still run it.
      const key = form.querySelector(".api-key");
      form.dataset.notAllowed = "1";
      form.querySelector(".not-allowed").hidden = false;
      form.querySelector("button[type=submit]").disabled = !(key && key.value);
    }
  }

  function startAccount() {
    const signInButton = document.getElementById("sign-in");
    if (!signInButton) return;
    const problem = document.getElementById("account-error");
    signInButton.addEventListener("click", () => {
      problem.hidden = true;
      signIn().catch((e) => {
        problem.textContent = "Cannot sign in: " + (e.message || e);
        problem.hidden = false;
      });
    });
    document.getElementById("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN);
      showAccount();
    });
    showAccount();
  }

  /** An element with text and attributes, children appended. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  /** The arguments a form holds, checked against the kinds of its inputs. */
  function collect(form) {
    const raw = form.querySelector("details.raw");
    if (raw && raw.open) {
      const text = raw.querySelector("textarea").value.trim() || "{}";
      let value;
      try {
        value = JSON.parse(text);
      } catch (e) {
        throw new Error("The arguments are not valid JSON: " + e.message);
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error('The arguments must be a JSON object, such as {"text": "hello"}.');
      }
      return value;
    }
    return fromFields(form);
  }

  /** The arguments the form's fields hold. */
  function fromFields(form) {
    const args = {};
    for (const input of form.querySelectorAll("[data-arg]")) {
      const name = input.dataset.arg;
      const kind = input.dataset.kind;
      if (kind === "boolean") {
        args[name] = input.checked;
        continue;
      }
      const value = input.value;
      if (value.trim() === "") {
        if (input.getAttribute("aria-required") === "true" && kind !== "text" && kind !== "long") {
          throw new Error("“" + name + "” is required.");
        }
        if (input.getAttribute("aria-required") !== "true") continue;
      }
      if (kind === "integer" || kind === "number") {
        const n = Number(value);
        if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
          throw new Error("“" + name + "” must be a " + (kind === "integer" ? "whole number." : "number."));
        }
        args[name] = n;
      } else if (kind === "json" || kind === "choice") {
        try {
          args[name] = JSON.parse(value);
        } catch (e) {
          throw new Error("“" + name + "” is not valid JSON: " + e.message);
        }
      } else {
        args[name] = value;
      }
    }
    return args;
  }

  /** What the outcome area of a form shows. */
  function outcome(form) {
    const area = form.querySelector(".outcome");
    return {
      clear() {
        area.className = "outcome";
        area.replaceChildren();
      },
      progress(params) {
        let bar = area.querySelector("progress");
        if (!bar) {
          bar = el("progress", { "aria-label": "Progress" });
          area.replaceChildren(bar, el("p", { class: "progress-message" }));
        }
        if (typeof params.total === "number" && params.total > 0) {
          bar.max = params.total;
          bar.value = Math.min(params.progress, params.total);
        }
        area.querySelector(".progress-message").textContent =
          params.message || "Working… (" + params.progress + (params.total ? " of " + params.total : "") + ")";
      },
      note(text) {
        area.append(el("p", { class: "progress-note", text }));
      },
      asked(box) {
        area.className = "outcome asking";
        area.replaceChildren(box);
      },
      error(title, detail) {
        area.className = "outcome error";
        area.replaceChildren(el("p", { class: "error-title", text: title }));
        if (detail) area.append(el("pre", { class: "error-detail", text: detail }));
      },
      result(result) {
        const content = Array.isArray(result.content) ? result.content : [];
        area.className = result.isError ? "outcome error" : "outcome ok";
        area.replaceChildren(
          el("p", { class: result.isError ? "error-title" : "result-title", text: result.isError ? "The call failed" : "Result" })
        );
        for (const item of content) area.append(render(item));
        if (result.structuredContent !== undefined) {
          area.append(
            el("p", { class: "structured-title", text: "Structured result (JSON)" }),
            el("pre", { class: "structured", text: JSON.stringify(result.structuredContent, null, 2) })
          );
        }
        if (!content.length && result.structuredContent === undefined) area.append(el("p", { text: "(no content)" }));
      },
    };
  }

  /** One content item of a result: text, an image, audio, an embedded resource or a link. */
  function render(item) {
    if (item.type === "text") return el("pre", { class: "text", text: String(item.text) });
    if (item.type === "image" && IMAGE_TYPES.includes(item.mimeType) && typeof item.data === "string") {
      return el("img", { src: "data:" + item.mimeType + ";base64," + item.data, alt: "Image returned by the tool (" + item.mimeType + ")" });
    }
    if (item.type === "audio" && /^audio\/[a-z0-9.+-]+$/.test(item.mimeType || "") && typeof item.data === "string") {
      return el("audio", { controls: "", src: "data:" + item.mimeType + ";base64," + item.data });
    }
    if (item.type === "resource" && item.resource) {
      const r = item.resource;
      if (typeof r.blob === "string" && IMAGE_TYPES.includes(r.mimeType)) {
        return el("img", { src: "data:" + r.mimeType + ";base64," + r.blob, alt: "Resource " + (r.uri || "") });
      }
      const body = typeof r.text === "string" ? r.text : "(" + (r.mimeType || "binary") + ", " + Math.floor(((r.blob || "").length * 3) / 4) + " bytes)";
      return el("pre", { class: "text", text: (r.uri || "") + "\n" + body });
    }
    if (item.type === "resource_link" && typeof item.uri === "string") {
      const about = [item.name, item.mimeType, item.description].filter(Boolean).join(" · ");
      return el("p", { class: "link", text: "Resource link: " + item.uri + (about ? " (" + about + ")" : "") });
    }
    return el("pre", { class: "text", text: JSON.stringify(item, null, 2) });
  }

  /** What an HTTP refusal means to the person who pressed Run. */
  function refusal(status, message) {
    const reasons = {
      401: document.getElementById("account")
        ? "This gateway needs you to sign in (or an API key): sign in above and run again."
        : "This gateway needs an API key: enter it above and run again.",
      403: "The gateway refused this call: your sign-in or key may not allow this tool, or this page's address is not among the allowed origins or hosts (an operator can add it with --allowed-origin or --allowed-host).",
      413: "The arguments are larger than this gateway accepts.",
      429: "Too many calls: a rate limit or quota was reached. Wait a moment and run again.",
    };
    return [reasons[status] || "The gateway answered HTTP " + status + ".", message];
  }

  /** The JSON-RPC messages of a server-sent event stream, as they come. */
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) {
          try {
            yield JSON.parse(data);
          } catch (e) {
            /* a priming or keep-alive event */
          }
        }
      }
      if (done) return;
    }
  }

  /**
   * Shows the forms a tool asks the user to fill in (elicitation), and
   * runs the call again with the answers when the user sends them.
   */
  function askUser(form, show, round) {
    const questions = Object.entries(round.inputRequests || {});
    const box = el("div", { class: "asked" }, el("p", { class: "result-title", text: "The tool asks" }));
    for (const [key, request] of questions) {
      const params = request.params || {};
      const fieldset = el("fieldset", { "data-question": key }, el("legend", { text: String(params.message || key) }));
      const properties = (params.requestedSchema && params.requestedSchema.properties) || {};
      for (const [name, schema] of Object.entries(properties)) {
        const label = el("label", { text: (schema.title || name) + " " });
        let input;
        if (Array.isArray(schema.enum)) {
          input = el("select", {}, ...schema.enum.map((v) => el("option", { value: String(v), text: String(v) })));
        } else if (schema.type === "boolean") {
          input = el("input", { type: "checkbox" });
        } else {
          input = el("input", { type: schema.type === "number" || schema.type === "integer" ? "number" : "text" });
        }
        input.dataset.answer = name;
        input.dataset.kind = schema.type || "string";
        label.append(input);
        fieldset.append(label);
      }
      box.append(fieldset);
    }
    const answer = (action) => {
      const responses = {};
      for (const fieldset of box.querySelectorAll("fieldset[data-question]")) {
        const content = {};
        for (const input of fieldset.querySelectorAll("[data-answer]")) {
          const kind = input.dataset.kind;
          content[input.dataset.answer] =
            kind === "boolean" ? input.checked : kind === "number" || kind === "integer" ? Number(input.value) : input.value;
        }
        responses[fieldset.dataset.question] = action === "accept" ? { action, content } : { action };
      }
      run(form, { inputResponses: responses, requestState: round.requestState });
    };
    const send = el("button", { type: "button", class: "answer", text: "Send" });
    const decline = el("button", { type: "button", class: "decline", text: "Decline" });
    send.addEventListener("click", () => answer("accept"));
    decline.addEventListener("click", () => answer("decline"));
    box.append(send, decline);
    show.asked(box);
  }

  async function run(form, answers) {
    const show = outcome(form);
    show.clear();
    let args;
    try {
      args = collect(form);
    } catch (e) {
      show.error("Check the arguments", e.message);
      return;
    }
    const tool = form.dataset.tool;
    const id = nextId++;
    const body = {
      jsonrpc: "2.0",
      id,
      method: "tools/call",
      params: {
        name: tool,
        arguments: args,
        _meta: {
          progressToken: "try-" + id,
          "io.modelcontextprotocol/protocolVersion": PROTOCOL,
          // The page answers forms a tool asks the user to fill in.
          "io.modelcontextprotocol/clientCapabilities": { elicitation: {} },
        },
        ...(answers || {}),
      },
    };
    const headers = {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": PROTOCOL,
      "mcp-method": "tools/call",
      "mcp-name": tool,
    };
    const key = form.querySelector(".api-key");
    const token = signedInToken();
    if (key && key.value) headers.authorization = "Bearer " + key.value.trim();
    else if (token) headers.authorization = "Bearer " + token;
    show.progress({ progress: 0, message: "Running…" });
    let response;
    try {
      response = await fetch("/mcp", { method: "POST", headers, body: JSON.stringify(body) });
    } catch (e) {
      show.error("Cannot reach the gateway", String(e.message || e));
      return;
    }
    let final = null;
    let lastProgress = null;
    let reports = 0;
    const type = response.headers.get("content-type") || "";
    try {
      if (type.includes("text/event-stream")) {
        for await (const message of events(response)) {
          if (message.method === "notifications/progress") {
            lastProgress = message.params || {};
            reports += 1;
            show.progress(lastProgress);
          } else if (message.id === id) {
            final = message;
          }
        }
      } else if (type.includes("json")) {
        final = await response.json();
      } else {
        const text = await response.text();
        show.error(...refusal(response.status, text.slice(0, 2000)));
        return;
      }
    } catch (e) {
      show.error("The answer could not be read", String(e.message || e));
      return;
    }
    if (!final) {
      show.error(...refusal(response.status, "The gateway sent no answer."));
    } else if (final.error) {
      const code = final.error.code;
      const title =
        response.status === 401 || response.status === 403 || response.status === 429
          ? refusal(response.status)[0]
          : code === -32602
            ? "The arguments do not fit this tool"
            : "The call failed";
      show.error(title, final.error.message);
    } else if (final.result && final.result.resultType === "input_required") {
      askUser(form, show, final.result);
    } else {
      show.result(final.result || {});
      if (reports) show.note("Progress reports: " + reports + (lastProgress.message ? " (the last: " + lastProgress.message + ")" : ""));
    }
  }

  function start() {
    if (location.pathname === "/signed-in" && document.getElementById("signing-in")) {
      finishSignIn().catch((e) => {
        document.getElementById("signing-in").textContent = "The sign-in failed: " + (e.message || e);
      });
      return;
    }
    startAccount();
    for (const form of document.querySelectorAll("form.try")) {
      const key = form.querySelector(".api-key");
      if (key) {
        key.addEventListener("input", () => {
          if (form.dataset.notAllowed) form.querySelector("button[type=submit]").disabled = !key.value;
        });
      }
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        run(form).finally(() => (button.disabled = false));
      });
      const raw = form.querySelector("details.raw");
      if (raw) {
        raw.addEventListener("toggle", () => {
          const area = raw.querySelector("textarea");
          if (!raw.open || area.value.trim()) return;
          try {
            area.value = JSON.stringify(fromFields(form), null, 2);
          } catch (e) {
            area.value = "{}";
          }
        });
      }
    }
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", async () => {
        const text = document.getElementById(button.dataset.copy).textContent;
        const label = button.textContent;
        try {
          await navigator.clipboard.writeText(text);
          button.textContent = "Copied";
        } catch (e) {
          const range = document.createRange();
          range.selectNodeContents(document.getElementById(button.dataset.copy));
          getSelection().removeAllRanges();
          getSelection().addRange(range);
          button.textContent = "Selected: press Ctrl+C";
        }
        setTimeout(() => (button.textContent = label), 2000);
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
