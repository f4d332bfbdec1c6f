// /docs: Swagger UI on this server's OpenAPI document. A file of its own, not an inline script:
// the Content-Security-Policy allows scripts from this site only.
/* global SwaggerUIBundle */
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    deepLinking: true,
    // No badge from validator.swagger.io: nothing on this page leaves the server.
    validatorUrl: null,
    tryItOutEnabled: false,
    // Calls made with "Try it out" send the login cookie; Django wants the CSRF token on writes.
    requestInterceptor: (request) => {
      const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
      if (match && !request.headers["X-CSRFToken"]) request.headers["X-CSRFToken"] = decodeURIComponent(match[1]);
      return request;
    },
  });
});
