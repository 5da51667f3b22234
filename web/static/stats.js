// Statistics pages: the print button (inline handlers are refused by the CSP).
"use strict";
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
