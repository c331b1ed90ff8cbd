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
 *
 * Punctuation stays with its formula. A typeset formula is an inline block, and a browser may
 * break the line right after one, leaving ", C_t" or a lone "." at the start of the next
 * line. Each inline formula and the punctuation that follows it (and an opening bracket
 * before it) are wrapped in one span that does not break.
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

  const CLOSING = /^[.,;:!?)\]\u2019\u201d]+/;
  const OPENING = /[(\[\u2018\u201c]+$/;

  function keepPunctuationWithFormulas(root) {
    root.querySelectorAll("span.math").forEach((math) => {
      if (math.parentElement && math.parentElement.classList.contains("math-nowrap")) {
        return;
      }
      const next = math.nextSibling;
      const prev = math.previousSibling;
      const after = next && next.nodeType === Node.TEXT_NODE ? CLOSING.exec(next.textContent) : null;
      const before = prev && prev.nodeType === Node.TEXT_NODE ? OPENING.exec(prev.textContent) : null;
      if (!after && !before) {
        return;
      }
      const wrap = document.createElement("span");
      wrap.className = "math-nowrap";
      math.before(wrap);
      if (before) {
        prev.textContent = prev.textContent.slice(0, before.index);
        wrap.append(before[0]);
      }
      wrap.append(math);
      if (after) {
        next.textContent = next.textContent.slice(after[0].length);
        wrap.append(after[0]);
      }
    });
  }

  ready(() => {
    keepPunctuationWithFormulas(document);
    forwardClicks(".primary-toggle");
    forwardClicks(".secondary-toggle");
    // searchtools.js declares `const Search` at the top level: a global name, not window's.
    if (typeof Search !== "undefined" && typeof Search.htmlToText === "function") {
      Search.htmlToText = snippetText;  // eslint-disable-line no-undef
    }
  });
})();
