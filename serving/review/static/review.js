// Keyboard labelling: 1-3 pick a top-3 class, c (or /) opens the list of all 27, s skips.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const filter = document.getElementById("class-filter");
  const select = document.getElementById("all-classes");
  const other = document.getElementById("other-form");
  let sent = false;  // one POST per card: a held-down key must not label the next product too
  const submit = (form, button) => {
    if (sent || !form) return;
    sent = true;
    form.requestSubmit(button || undefined);
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const inField = event.target instanceof HTMLElement && event.target.matches("input, select, textarea");
    if (inField) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (["1", "2", "3"].includes(event.key)) {
      const button = document.querySelector(`#label-form button[data-key="${event.key}"]`);
      if (button) { event.preventDefault(); submit(button.form, button); }
    } else if (event.key === "s") {
      const skip = document.getElementById("skip");
      if (skip) { event.preventDefault(); submit(skip.form, skip); }
    } else if ((event.key === "c" || event.key === "/") && filter) {
      event.preventDefault();
      filter.focus();
    }
  });
  if (!filter || !select) return;
  const options = Array.from(select.options);
  filter.addEventListener("input", () => {
    const wanted = filter.value.trim().toLowerCase();
    let first = null;
    for (const option of options) {
      const shown = option.text.toLowerCase().includes(wanted);
      option.hidden = !shown;
      if (shown && first === null) first = option;
    }
    if (first) select.value = first.value;
  });
  const pickOnEnter = (event) => {
    if (event.key === "Enter" && select.value) { event.preventDefault(); submit(other); }
    if (event.key === "ArrowDown" && event.target === filter) { event.preventDefault(); select.focus(); }
  };
  filter.addEventListener("keydown", pickOnEnter);
  select.addEventListener("keydown", pickOnEnter);
  select.addEventListener("dblclick", () => submit(other));
  other.addEventListener("submit", () => { sent = true; });
});
