// The settings dialog: the user's profile (GET/PATCH /profile): display name, timezone, custom
// instructions, memories on or off. Every value goes into form controls as text, never as markup.

import { api, ApiError } from "./api.js";

const FIELDS = ["display_name", "timezone", "custom_instructions", "memories_enabled"];

function browserTimezone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export class SettingsDialog {
  constructor(config, { onSaved } = {}) {
    const $ = (id) => document.getElementById(id);
    this.dialog = $("settings");
    this.form = $("settings-form");
    this.name = $("profile-name");
    this.timezone = $("profile-timezone");
    this.instructions = $("profile-instructions");
    this.count = $("profile-count");
    this.memories = $("profile-memories");
    this.notice = $("settings-notice");
    this.save = $("settings-save");
    this.max = config.limits.customInstructionsChars;
    this.onSaved = onSaved || (() => {});
    this.saved = null;
    this.known = new Set(config.timezones);
    this.timezone.replaceChildren(...config.timezones.map((zone) => new Option(zone.replaceAll("_", " "), zone)));
    this.instructions.addEventListener("input", () => this.updateCount());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("settings-cancel").addEventListener("click", () => this.dialog.close());
  }

  updateCount() {
    this.count.textContent = `${this.instructions.value.length} / ${this.max} characters`;
  }

  showNotice(text) {
    this.notice.textContent = text || "";
    this.notice.hidden = !text;
  }

  fill(profile) {
    this.saved = profile;
    this.name.value = profile.display_name;
    // Never changed: suggest the browser's timezone (saved only if the user saves the dialog).
    const zone = profile.updated_at === null && this.known.has(browserTimezone()) ? browserTimezone() : profile.timezone;
    this.timezone.value = zone;
    this.instructions.value = profile.custom_instructions;
    this.memories.checked = profile.memories_enabled;
    this.updateCount();
  }

  async open() {
    this.showNotice("");
    this.save.disabled = false;
    try {
      this.fill(await api.profile());
    } catch (error) {
      this.showNotice(`Your settings could not be loaded: ${error instanceof ApiError ? error.detail : error}`);
      this.save.disabled = true;
    }
    if (!this.dialog.open) this.dialog.showModal();
    this.name.focus();
  }

  changes() {
    const now = {
      display_name: this.name.value.trim(),
      timezone: this.timezone.value,
      custom_instructions: this.instructions.value.trim(),
      memories_enabled: this.memories.checked,
    };
    const changed = {};
    for (const field of FIELDS) {
      if (!this.saved || this.saved.updated_at === null || now[field] !== this.saved[field]) changed[field] = now[field];
    }
    return changed;
  }

  async submit() {
    this.save.disabled = true;
    this.showNotice("");
    try {
      const profile = await api.saveProfile(this.changes());
      this.saved = profile;
      this.dialog.close();
      this.onSaved(profile);
    } catch (error) {
      this.showNotice(`Not saved: ${error instanceof ApiError ? error.detail : error}`);
    } finally {
      this.save.disabled = false;
    }
  }
}
