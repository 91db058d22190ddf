// Every page (a classic script in <head>, so the theme is set before the first paint):
// - the light/dark theme follows the hub's: JupyterHub 5's darkmode.js keeps the choice in
//   localStorage "jupyterhub-bs-theme" (same origin), else prefers-color-scheme; the toggle
//   stores it there too, so the hub and this page always agree;
// - the navbar collapses behind its toggler on narrow screens (no Bootstrap JS needed).
(function () {
  "use strict";
  const KEY = "jupyterhub-bs-theme";
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const stored = () => {
    try {
      return localStorage.getItem(KEY);
    } catch {
      return null;
    }
  };
  const preferred = () => {
    const theme = stored();
    if (theme === "light" || theme === "dark") return theme;
    return dark.matches ? "dark" : "light";
  };
  const apply = (theme) => {
    document.documentElement.setAttribute("data-bs-theme", theme);
    const toggle = document.getElementById("dark-theme-toggle");
    if (toggle) toggle.setAttribute("aria-pressed", String(theme === "dark"));
  };
  apply(preferred());
  dark.addEventListener("change", () => apply(preferred()));
  window.addEventListener("storage", (event) => {
    if (event.key === KEY) apply(preferred());
  });

  window.addEventListener("DOMContentLoaded", () => {
    apply(preferred());
    const toggle = document.getElementById("dark-theme-toggle");
    toggle?.addEventListener("click", () => {
      const next = document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(KEY, next);
      } catch {
        // storage refused: the choice lasts for this page only
      }
      apply(next);
    });
    const burger = document.getElementById("navbar-toggle");
    const menu = document.getElementById("thenavbar");
    burger?.addEventListener("click", () => {
      const open = menu.classList.toggle("show");
      burger.setAttribute("aria-expanded", String(open));
    });
  });
})();
