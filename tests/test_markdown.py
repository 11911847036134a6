"""harness.markdown: the Markdown docs/fidelity.md and a report's notes use, as HTML (for `harness site`)."""
from harness import markdown

DOC = """# Fidelity: how *each* paper is read

<a id="zheng"></a>
## Zheng & Wang (`000.txt`)

A line with `code <b>`, **bold** and [a link](#zheng),
continued here; [a file](../harness/x.py) is not a page.

- one
  continued
- two

| a | b |
|---|--:|
| 1 | <2> |

```
x = 1 < 2
```
"""


def test_a_document_renders_with_ids_anchors_and_everything_else_escaped():
    out = markdown.render(DOC, lambda t: t if t.startswith("#") else None)
    assert '<h1 id="fidelity-how-each-paper-is-read">Fidelity: how <em>each</em> paper is read</h1>' in out
    assert '<a id="zheng"></a>' in out  # the raw anchor passes through; no other HTML does
    assert '<h2 id="zheng--wang-000txt">Zheng &amp; Wang (<code>000.txt</code>)</h2>' in out
    assert ("<p>A line with <code>code &lt;b&gt;</code>, <strong>bold</strong> and <a href=\"#zheng\">a link</a>, "
            "continued here; a file is not a page.</p>") in out
    assert "<ul><li>one continued</li><li>two</li></ul>" in out
    assert "<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>&lt;2&gt;</td></tr></tbody>" in out
    assert "<pre><code>x = 1 &lt; 2</code></pre>" in out
    assert "<b>" not in out


def test_the_shipped_fidelity_doc_has_each_papers_anchor():
    from harness import site

    doc = site.fidelity_doc()
    out = markdown.render(doc.read_text())
    for paper in ("zheng", "poellot", "calli", "jiang", "jin", "accuracy"):
        assert f'<a id="{paper}"></a>' in out and f'href="#{paper}"' in out
