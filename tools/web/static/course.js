/* The course's own script, added to every page by tools/site_assets.py.
 *
 * Sidebar toggles. sphinx-book-theme 1.3 on pydata-sphinx-theme 0.17 renders two buttons of
 * class .primary-toggle (and two of .secondary-toggle): one in the site header, which the
 * book theme hides, and one in the article header, which readers see. Both themes bind their
 * handlers to the first match only (document.querySelector), so the visible button does
 * nothing: on a phone the table of contents cannot be opened. The visible buttons here pass
 * their click to the bound one, which runs the themes' own code (collapse the sidebar on a
 * wide screen, open it as a dialog on a narrow one).
 */
(function () {
  "use strict";

  function forwardClicks(selector) {
    const buttons = Array.from(document.querySelectorAll(selector));
    if (buttons.length < 2) {
      return;
    }
    const bound = buttons[0];
    buttons.slice(1).forEach((button) => {
      button.addEventListener(
        "click",
        (event) => {
          event.preventDefault();
          event.stopImmediatePropagation();
          bound.click();
          button.blur();
        },
        true,
      );
    });
  }

  function ready(callback) {
    if (document.readyState !== "loading") {
      callback();
    } else {
      document.addEventListener("DOMContentLoaded", callback);
    }
  }

  ready(() => {
    forwardClicks(".primary-toggle");
    forwardClicks(".secondary-toggle");
  });
})();
