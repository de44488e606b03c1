// pacslb WebUI: a little plain JavaScript, no build step, no library.
// - [data-refresh=URL][data-interval=ms]: fetch the fragment and replace the element's content, while the
//   tab is visible and no form field in it has the focus; [data-refresh-status=NAME] says "live" or why not.
// - [data-variant-of=FIELD][data-types="a b"]: show a form field only for the chosen type of FIELD.
// - form[data-confirm]: ask before submitting.
// - the dashboard (#dash-filter, details.group): filters by state and name, and the groups a person opened or
//   closed stay so across live refreshes and page loads (sessionStorage); without JS it is the full list.
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
          document.activeElement.tagName !== "BUTTON" && document.activeElement.tagName !== "SUMMARY") return;
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
          el.dispatchEvent(new CustomEvent("pacslb:refreshed", { bubbles: true }));
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

  function dashboard(form) {
    var live = document.getElementById("live");
    var stateField = document.getElementById("filter-state");
    var nameField = document.getElementById("filter-name");
    var countText = document.getElementById("filter-count");
    var KEY = "pacslb-dashboard-open";
    var chosen = {};
    try { chosen = JSON.parse(window.sessionStorage.getItem(KEY) || "{}"); } catch (e) { chosen = {}; }
    function remember() { try { window.sessionStorage.setItem(KEY, JSON.stringify(chosen)); } catch (e) { /* private mode */ } }
    var PROBLEM = /(^| )(down|drain|halt|unknown)( |$)/;
    function has(el, state) {  // the state filter on a group or a service: data-states lists the states inside
      var states = el.getAttribute("data-states") || "";
      if (!state) return true;
      if (state === "problem") return PROBLEM.test(states);
      return (" " + states + " ").indexOf(" " + state + " ") >= 0;
    }
    function named(el, name) { return !name || (el.getAttribute("data-search") || "").indexOf(name) >= 0; }
    function apply() {
      var state = stateField.value, name = nameField.value.trim().toLowerCase();
      var filtering = !!(state || name), shown = 0, groups = live.querySelectorAll("details.group");
      groups.forEach(function (group) {
        var id = group.id;
        var matches = 0;
        // the VIP's own name matches: its whole block (the backend-only services under it) answers the filter
        var head = group.querySelector("tbody.vs:not(.nested)");
        var vipNamed = !!(name && head && group.querySelector("tbody.vs.nested") &&
                          (head.getAttribute("data-service") || "").toLowerCase().indexOf(name) >= 0);
        group.querySelectorAll("tbody.vs").forEach(function (body) {
          var ok = has(body, state) && (vipNamed || named(body, name));
          body.hidden = filtering && !ok;
          if (ok) matches += 1;
        });
        var visible = !filtering || matches > 0;
        group.hidden = !visible;
        if (visible) shown += 1;
        if (filtering && visible) group.open = true;
        else if (Object.prototype.hasOwnProperty.call(chosen, id)) group.open = chosen[id];
        else group.open = group.getAttribute("data-problem") === "yes";
      });
      countText.textContent = filtering ? shown + " of " + groups.length + " groups" : "";
    }
    function openTarget() {
      var target = window.location.hash && document.getElementById(window.location.hash.slice(1));
      var group = target && target.closest("details.group");
      if (group) { chosen[group.id] = true; remember(); group.open = true; target.scrollIntoView(); }
    }
    live.addEventListener("click", function (event) {
      var summary = event.target.closest("details.group > summary");
      if (!summary || event.target.closest("a")) return;
      var group = summary.parentElement;
      chosen[group.id] = !group.open;  // the click toggles it after this handler
      remember();
    });
    form.querySelectorAll("[data-expand]").forEach(function (button) {
      button.addEventListener("click", function () {
        var open = button.getAttribute("data-expand") === "open";
        live.querySelectorAll("details.group").forEach(function (group) { chosen[group.id] = open; });
        remember();
        apply();
      });
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    stateField.addEventListener("change", apply);
    nameField.addEventListener("input", apply);
    live.addEventListener("pacslb:refreshed", apply);
    window.addEventListener("hashchange", openTarget);
    form.hidden = false;
    apply();
    openTarget();
  }

  document.querySelectorAll("[data-refresh]").forEach(refresher);
  var filter = document.getElementById("dash-filter");
  if (filter && document.getElementById("live")) dashboard(filter);
  document.querySelectorAll("form").forEach(variants);
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
