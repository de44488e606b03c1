// pacslb: start the API explorer on the management API's own OpenAPI document. A file, not an inline script, so
// that the page keeps a strict Content-Security-Policy; no validator (it would send the document to a web service).
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
