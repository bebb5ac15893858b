// The admin's webhooks: the endpoints with their events and state (active, or disabled
// and why), adding one (URL and events from GET /webhooks/events; its signing secret is
// shown once), disabling, enabling again and deleting one, and one endpoint's recent
// delivery log (status, attempts, response code). Rendered into the container given.

import { api, copyButton, el, message, results, show, when } from "./api.js";

const LOG_LIMIT = 20;

function stateText(hook) {
  if (hook.enabled) {
    return hook.consecutive_failures ? `active · ${hook.consecutive_failures} failures in a row` : "active";
  }
  if (!hook.disabled_reason) return "disabled by an admin";
  const since = hook.disabled_at ? ` since ${when(hook.disabled_at)}` : "";
  return `disabled${since}: ${hook.disabled_reason}`;
}

function lastCode(delivery) {
  const answered = delivery.attempts.filter((a) => a.status_code !== null);
  return answered.length ? String(answered[answered.length - 1].status_code) : "none";
}

function deliveryLog(hook, rows) {
  const heading = el("h3", {}, `Recent deliveries to ${hook.url}`);
  if (!rows.length) return [heading, el("p", { class: "meta" }, "Nothing delivered yet.")];
  return [heading, el("table", { class: "table", id: "webhook-deliveries", "data-webhook-id": hook.id },
    el("thead", {}, el("tr", {}, el("th", {}, "Created"), el("th", {}, "Event"),
      el("th", {}, "Status"), el("th", {}, "Attempts"), el("th", {}, "Last response"),
      el("th", {}, "Last error"))),
    el("tbody", {}, rows.map((d) => el("tr", { "data-delivery-id": d.id },
      el("td", {}, when(d.created_at)), el("td", {}, d.event || ""),
      el("td", { class: "status" }, d.status,
         d.next_attempt_at ? el("span", { class: "meta" }, ` · next try ${when(d.next_attempt_at)}`) : null),
      el("td", { class: "attempts" }, String(d.attempts.length)),
      el("td", { class: "code" }, lastCode(d)), el("td", {}, d.last_error || "")))))];
}

export class WebhooksAdmin {
  constructor(container) {
    this.box = container;
    this.notice = el("div", { id: "webhook-notice" });
    this.list = el("div", { id: "webhook-list" });
    this.log = el("div", { id: "webhook-log" });
    this.form = el("form", { id: "new-webhook", class: "stack" });
    this.all = "*"; // what stands for every event, as GET /webhooks/events names it
  }

  async start() {
    const kinds = await api("GET", "/webhooks/events");
    this.all = kinds.all;
    this.buildForm(kinds.results, kinds.all);
    show(this.box, this.notice, this.list, el("h3", {}, "Add a webhook"), this.form, this.log);
    await this.refresh();
  }

  buildForm(names, all) {
    const url = el("input", { id: "webhook-url", type: "url", required: true,
                              placeholder: "https://hooks.example.com/academia", "aria-label": "Webhook URL" });
    const every = el("input", { type: "checkbox", value: all, id: "webhook-event-all" });
    const boxes = names.map((name) => el("input", { type: "checkbox", value: name, name: "event" }));
    every.addEventListener("change", () => boxes.forEach((b) => { b.disabled = every.checked; }));
    const choices = el("fieldset", { id: "webhook-events" }, el("legend", {}, "Events"),
      el("label", {}, every, " All events, present and future"),
      boxes.map((b) => el("label", {}, b, " ", b.value)));
    this.form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const events = every.checked ? [all] : boxes.filter((b) => b.checked).map((b) => b.value);
      if (!events.length) {
        message(this.notice, "Choose at least one event.");
        return;
      }
      try {
        const made = await api("POST", "/webhooks", { url: url.value.trim(), events });
        this.form.reset();
        boxes.forEach((b) => { b.disabled = false; });
        show(this.notice, el("div", { class: "notice info", role: "status", id: "webhook-secret" },
          el("p", {}, `Webhook added. Its signing secret is shown only now: keep it to verify deliveries.`),
          el("code", { class: "secret" }, made.secret), " ", copyButton(made.secret)));
        await this.refresh();
      } catch (error) {
        message(this.notice, error.message);
      }
    });
    this.form.append(el("label", {}, "URL", url), choices,
                     el("div", {}, el("button", { type: "submit" }, "Add webhook")));
  }

  async refresh() {
    const hooks = results(await api("GET", "/webhooks"));
    if (!hooks.length) {
      show(this.list, el("p", { class: "meta" }, "No webhook yet."));
      return;
    }
    show(this.list, el("table", { class: "table", id: "webhooks" },
      el("thead", {}, el("tr", {}, el("th", {}, "URL"), el("th", {}, "Events"),
                          el("th", {}, "State"), el("th", {}, ""))),
      el("tbody", {}, hooks.map((h) => el("tr", {
        "data-webhook-id": h.id, "data-state": h.enabled ? "active" : "disabled" },
        el("td", { class: "url" }, h.url),
        el("td", { class: "events" }, h.events.includes(this.all) ? "all events" : h.events.join(", ")),
        el("td", { class: "state" }, stateText(h)),
        el("td", {},
          el("button", { type: "button", class: "small deliveries", onclick: () => this.showLog(h) }, "Deliveries"), " ",
          el("button", { type: "button", class: "small toggle", onclick: () => this.act(h, "PATCH", { enabled: !h.enabled }) },
             h.enabled ? "Disable" : "Enable"), " ",
          el("button", { type: "button", class: "small delete", onclick: () => {
            if (confirm(`Delete the webhook to ${h.url} and its delivery log?`)) this.act(h, "DELETE");
          } }, "Delete")))))));
  }

  async act(hook, method, body) {
    try {
      await api(method, `/webhooks/${hook.id}`, body);
      if (method === "DELETE" && this.log.dataset.webhookId === String(hook.id)) show(this.log);
      await this.refresh();
    } catch (error) {
      message(this.notice, error.message);
    }
  }

  async showLog(hook) {
    this.log.dataset.webhookId = String(hook.id);
    try {
      const rows = results(await api("GET", `/webhooks/${hook.id}/deliveries?limit=${LOG_LIMIT}`));
      show(this.log, deliveryLog(hook, rows));
    } catch (error) {
      message(this.log, error.message);
    }
  }
}
