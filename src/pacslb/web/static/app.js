// pacslb WebUI: a little plain JavaScript, no build step, no library.
// - [data-refresh=URL][data-interval=ms]: fetch the fragment and replace the element's content, while the
//   tab is visible and no form field in it has the focus; [data-refresh-status=NAME] says "live" or why not.
// - [data-variant-of=FIELD][data-types="a b"]: show a form field only for the chosen type of FIELD.
// - form[data-confirm]: ask before submitting.
(function () {
  "use strict";

  function status(name, text, stale) {
    var el = document.querySelector('[data-refresh-status="' + name + '"]');
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("stale", !!stale);
  }

  function refresher(el) {
    var url = el.getAttribute("data-refresh");
    var interval = parseInt(el.getAttribute("data-interval") || "2000", 10);
    var name = el.getAttribute("data-status") || "";
    var busy = false;
    function tick() {
      if (busy || document.hidden) return;
      if (el.contains(document.activeElement) && document.activeElement.tagName !== "BODY" &&
          document.activeElement.tagName !== "BUTTON") return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected && response.url.indexOf("/login") >= 0) { window.location = "/login"; return null; }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          var atBottom = el.getAttribute("data-scroll") === "bottom";
          el.innerHTML = html;
          if (atBottom) { var pre = el.querySelector("pre"); if (pre) pre.scrollTop = pre.scrollHeight; }
          status(name, "live · " + new Date().toLocaleTimeString(), false);
        })
        .catch(function (error) { status(name, "not updated: " + error.message, true); })
        .finally(function () { busy = false; });
    }
    window.setInterval(tick, interval);
    if (el.getAttribute("data-scroll") === "bottom") {
      var pre = el.querySelector("pre"); if (pre) pre.scrollTop = pre.scrollHeight;
    }
  }

  function variants(form) {
    var dependents = form.querySelectorAll("[data-variant-of]");
    var names = {};
    dependents.forEach(function (el) { names[el.getAttribute("data-variant-of")] = true; });
    Object.keys(names).forEach(function (name) {
      var chooser = form.querySelector('[name="' + name + '"]');
      if (!chooser) return;
      function update() {
        dependents.forEach(function (el) {
          if (el.getAttribute("data-variant-of") !== name) return;
          var types = el.getAttribute("data-types").split(" ");
          el.hidden = types.indexOf(chooser.value) < 0 && !el.classList.contains("has-error");
        });
      }
      chooser.addEventListener("change", update);
      update();
    });
  }

  document.querySelectorAll("[data-refresh]").forEach(refresher);
  document.querySelectorAll("form").forEach(variants);
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
