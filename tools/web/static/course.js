/* The course's own script, added to every page by tools/site_assets.py.
 *
 * Sidebar toggles. sphinx-book-theme 1.3 on pydata-sphinx-theme 0.17 renders two buttons of
 * class .primary-toggle (and two of .secondary-toggle): one in the site header, which the
 * book theme hides, and one in the article header, which readers see. Both themes bind their
 * handlers to the first match only (document.querySelector), so the visible button does
 * nothing: on a phone the table of contents cannot be opened. The visible buttons here pass
 * their click to the bound one, which runs the themes' own code (collapse the sidebar on a
 * wide screen, open it as a dialog on a narrow one).
 *
 * Search snippets. Sphinx cuts each result's snippet out of the page's text, where a formula
 * is still its TeX source (MathJax has not run on it), and the page's buttons and contents
 * list come first. The page text handed to the snippet maker here leaves out the page chrome
 * and writes each formula as plain text when it is a bare symbol (t, d, h_t) and as
 * "(formula)" otherwise, so no snippet shows half a TeX command.
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

  const CHROME = [".headerlink", "script", "style", ".bd-header-article", ".bd-sidebar-secondary", ".onlyprint",
                  ".prev-next-area", ".bd-footer-article", ".toggle-button", ".copybtn"];

  function formulaAsText(tex) {
    const bare = tex.replace(/^\\[(\[]/, "").replace(/\\[)\]]$/, "").trim();
    return /^[A-Za-z0-9_^{}+\-=., ]{1,12}$/.test(bare) ? bare.replace(/[{}]/g, "") : "(formula)";
  }

  function snippetText(htmlString, anchor) {
    const doc = new DOMParser().parseFromString(htmlString, "text/html");
    doc.querySelectorAll(CHROME.join(", ")).forEach((e) => e.remove());
    doc.querySelectorAll("span.math, div.math").forEach((e) => {
      e.replaceWith(doc.createTextNode(formulaAsText(e.textContent)));
    });
    const main = doc.querySelector('[role="main"]');
    const block = anchor && main ? main.querySelector(anchor) : null;
    return (block || main || doc.body).textContent;
  }

  ready(() => {
    forwardClicks(".primary-toggle");
    forwardClicks(".secondary-toggle");
    // searchtools.js declares `const Search` at the top level: a global name, not window's.
    if (typeof Search !== "undefined" && typeof Search.htmlToText === "function") {
      Search.htmlToText = snippetText;  // eslint-disable-line no-undef
    }
  });
})();
