"""A Sphinx extension: number the prelude (chapter 0) like the numbered chapters.

The prelude sits outside the numbered parts of ``_toc.yml`` (so that chapter 1 is the vanilla
RNN), and Sphinx then numbers its equations (1), (2), ... where every other chapter has
(1.1), (5.2), ... This prefixes every number in the prelude, equations and figures alike, with
its chapter number 0, both where the number is shown and where it is referenced.
"""

from __future__ import annotations

PRELUDE = "notebooks/00_gates_are_sigmoids"
CHAPTER = 0


def number_the_prelude(app, env) -> list[str]:
    """After Sphinx has assigned the figure and equation numbers, prefix the prelude's."""
    changed = []
    for numbers in env.toc_fignumbers.get(PRELUDE, {}).values():
        for node_id, number in numbers.items():
            if len(number) == 1:  # not yet prefixed (the hook may run more than once)
                numbers[node_id] = (CHAPTER, *number)
                changed = [PRELUDE]
    return changed


def setup(app):
    # Sphinx assigns the numbers in an env-get-updated handler of priority 500; run after it
    app.connect("env-get-updated", number_the_prelude, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
