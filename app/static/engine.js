/* EWAS task engine: the little behaviour HTMX does not give. No inline scripts (CSP). */
(function () {
  "use strict";
  var PAUSED_KEY = "ewas.live.paused";

  function paused() {
    try { return window.localStorage.getItem(PAUSED_KEY) === "1"; } catch (e) { return false; }
  }

  function showToggle(button) {
    var isPaused = paused();
    button.hidden = false;
    button.setAttribute("aria-pressed", isPaused ? "true" : "false");
    button.textContent = isPaused ? button.dataset.resume : button.dataset.pause;
    document.documentElement.classList.toggle("live-paused", isPaused);
  }

  var FOCUS_KEY = "ewas.focus.after-reload";

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    /* The control that submitted the previous page (the language select) keeps the focus. */
    try {
      var focusId = window.sessionStorage.getItem(FOCUS_KEY);
      window.sessionStorage.removeItem(FOCUS_KEY);
      var focusTarget = focusId && document.getElementById(focusId);
      if (focusTarget) { focusTarget.focus(); }
    } catch (e) { /* storage disabled */ }
    var toggle = document.getElementById("live-toggle");
    if (toggle) {
      showToggle(toggle);
      toggle.addEventListener("click", function () {
        try { window.localStorage.setItem(PAUSED_KEY, paused() ? "0" : "1"); } catch (e) { /* private mode */ }
        showToggle(toggle);
      });
    }
  });

  /* Polled elements carry data-live; while paused their requests are cancelled. */
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (paused() && elt && elt.closest && elt.closest("[data-live]") && !event.detail.boosted) {
      var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
      if (!trigger || trigger.type === "every" || !trigger.isTrusted) {
        event.preventDefault();
      }
    }
  });

  /* A select[data-pointer-submit] submits its form when a pointer picked an option. From the
     keyboard, arrows only walk the options (a change event each, on a closed select) and Enter or
     the button beside it submits, so a keyboard user can reach the last option. */
  var pointerPicking = null;
  document.addEventListener("pointerdown", function (event) {
    var target = event.target;
    pointerPicking = target.matches && target.matches("select[data-pointer-submit]") ? target : null;
  });
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!(target.matches && target.matches("select[data-pointer-submit]"))) { return; }
    pointerPicking = null;
    if (event.key === "Enter") {
      event.preventDefault();
      target.form.requestSubmit();
    }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-pointer-submit]") && pointerPicking === target) {
      pointerPicking = null;
      target.form.requestSubmit();
    }
    /* A "select all" checkbox: data-select-all="name" toggles every checkbox of that name. */
    if (target.matches && target.matches("input[data-select-all]")) {
      var name = target.getAttribute("data-select-all");
      document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
  });

  /* A table wider than its box (.table-wrap, e.g. on a phone) scrolls sideways: it is then a group
     in the tab order, named after the heading before it, so a keyboard can scroll it too (a group,
     not a region: the section around it may be a region of that name). Where it fits, no tab stop. */
  function headingBefore(element) {
    for (var e = element; e && e !== document.body; e = e.parentElement) {
      for (var s = e.previousElementSibling; s; s = s.previousElementSibling) {
        if (/^H[1-6]$/.test(s.tagName)) { return s; }
        var inner = s.querySelectorAll("h1, h2, h3, h4, h5, h6");
        if (inner.length) { return inner[inner.length - 1]; }
      }
    }
    return document.querySelector("h1");
  }

  function reachScrollers() {
    document.querySelectorAll(".table-wrap").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      var marked = box.hasAttribute("data-scroll-reachable");
      if (scrolls && !marked && !box.hasAttribute("tabindex")) {
        var heading = headingBefore(box);
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "group");
        box.setAttribute("aria-label", heading ? heading.textContent.trim() : document.title);
        box.setAttribute("data-scroll-reachable", "");
      } else if (!scrolls && marked) {
        ["tabindex", "role", "aria-label", "data-scroll-reachable"].forEach(function (name) {
          box.removeAttribute(name);
        });
      }
    });
  }

  var resizing = false;
  document.addEventListener("DOMContentLoaded", reachScrollers);
  document.addEventListener("htmx:afterSettle", reachScrollers);
  window.addEventListener("resize", function () {
    if (resizing) { return; }
    resizing = true;
    window.requestAnimationFrame(function () { resizing = false; reachScrollers(); });
  });

  /* A field's error list replaced by a fragment (out of band): the field's invalid state follows. */
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".field > ul.field-errors").forEach(function (list) {
      var field = list.parentElement;
      var input = field.querySelector("input, select, textarea");
      var invalid = list.children.length > 0;
      field.classList.toggle("has-error", invalid);
      if (!input) { return; }
      if (invalid) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", list.id);
      } else {
        input.removeAttribute("aria-invalid");
      }
    });
  });

  /* A form[data-keep-focus] notes which of its controls had the focus, for the page it loads. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var active = document.activeElement;
    if (form.hasAttribute("data-keep-focus") && active && active.id && form.contains(active)) {
      try { window.sessionStorage.setItem(FOCUS_KEY, active.id); } catch (e) { /* storage disabled */ }
    }
  });

  /* Buttons with data-confirm ask before submitting their form (delete, discard all). */
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);
})();
