// Admin pages: show only the fields that apply, confirm destructive buttons. Every page works without it.
(function () {
  "use strict";

  // Rule form: the fields of the chosen repetition.
  document.querySelectorAll("form.rule-form").forEach(function (form) {
    var select = form.querySelector("select[name=frequency]");
    if (!select) return;
    function update() {
      form.querySelectorAll(".repeat").forEach(function (part) {
        part.hidden = part.dataset.when !== select.value;
      });
    }
    select.addEventListener("change", update);
    update();
  });

  // data-show-if="start=at": shown while the select named start has the value at.
  document.querySelectorAll("[data-show-if]").forEach(function (part) {
    var rule = part.dataset.showIf.split("=");
    var form = part.closest("form");
    var select = form && form.querySelector("[name=" + rule[0] + "]");
    if (!select) return;
    function update() { part.hidden = select.value !== rule[1]; }
    select.addEventListener("change", update);
    update();
  });

  // Closure form: "all queues" makes the single picks irrelevant.
  document.querySelectorAll("form.closure-form").forEach(function (form) {
    var all = form.querySelector("input[name$=all_queues]");
    var picks = form.querySelector(".queue-picks");
    if (!all || !picks) return;
    function update() { picks.hidden = all.checked; }
    all.addEventListener("change", update);
    update();
  });

  // "May log in" implies "may see".
  document.querySelectorAll("input.may-log-in").forEach(function (box) {
    box.addEventListener("change", function () {
      var see = document.getElementById(box.id.replace("may_log_in_", "may_see_"));
      if (box.checked && see) see.checked = true;
    });
  });

  // A refused form: take the keyboard to the first field with an error, which also scrolls to it.
  var invalid = document.querySelector(".field.invalid");
  if (invalid) {
    var control = invalid.querySelector("input:not([type=hidden]), select, textarea");
    if (control) control.focus();
  }

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
})();
