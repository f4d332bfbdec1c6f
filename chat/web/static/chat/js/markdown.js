// Answers as Markdown: parsed by marked, sanitised by DOMPurify (both vendored, see vendor/VERSIONS).
// Model output is untrusted: it may repeat a user's <img onerror=...> or a javascript: link, so
// everything goes through DOMPurify, which drops scripts, event handlers and unsafe URLs.

const { marked, DOMPurify } = window;

marked.use({ gfm: true, breaks: true });

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style"],
  RETURN_DOM_FRAGMENT: true,
};

function copyButton(pre) {
  const code = pre.querySelector("code") || pre;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy the code");
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => {
      button.textContent = "Copy";
    }, 1500);
  });
  const block = document.createElement("div");
  block.className = "code-block";
  const lang = (code.className.match(/language-([\w+-]+)/) || [])[1];
  if (lang) {
    const label = document.createElement("span");
    label.className = "lang";
    label.textContent = lang;
    block.append(label);
  }
  pre.replaceWith(block);
  block.append(button, pre);
}

export function renderMarkdown(element, text) {
  const fragment = DOMPurify.sanitize(marked.parse(text || ""), PURIFY);
  element.replaceChildren(fragment);
  element.querySelectorAll("pre").forEach(copyButton);
}
