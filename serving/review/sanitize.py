"""Product descriptions as safe HTML: sellers write them, so they are untrusted markup.

Only formatting tags survive, with no attribute at all (no ``on*`` handler, ``style``, ``href`` or
``src``): nothing in a description can run script or make the reviewer's browser load anything.
``script`` and ``style`` go with their content; every other tag is dropped and its text kept.
"""

from __future__ import annotations

import nh3

# Formatting the Rakuten export actually uses; no a/img/iframe/form/svg: links and loads are out.
ALLOWED_TAGS = frozenset({"p", "br", "b", "strong", "i", "em", "u", "s", "sub", "sup", "small", "ul", "ol", "li", "blockquote"})
REMOVED_WITH_CONTENT = frozenset({"script", "style"})


def sanitize_description(html: str | None) -> str:
    """``html`` with only :data:`ALLOWED_TAGS`, attribute-free; '' for a missing description."""
    if not html:
        return ""
    return nh3.clean(
        html, tags=set(ALLOWED_TAGS), clean_content_tags=set(REMOVED_WITH_CONTENT), attributes={}, url_schemes=set(),
        link_rel=None, strip_comments=True,
    )
