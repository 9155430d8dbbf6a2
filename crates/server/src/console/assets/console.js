// The console's only script, and every page works without it: it asks
// before a form marked data-confirm (decline, revoke) is sent.
"use strict";
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
