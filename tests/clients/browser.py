"""Open a report in headless Chromium and measure its layout.

``layout(page, profile)`` loads a copy of the page with one script of the test's own appended:
once the page says its charts are drawn (``data-charts-done``), the script measures the
bounding boxes of every chart's axis labels, titles and legend entries and of every table,
at a 1,400 px wide window, and writes what it found as JSON into the DOM, which Chromium
dumps. A problem is one of:

- a label (tick label, axis title, chart title, legend text) outside its chart's box: cut off;
- two tick labels of one axis, or an axis title and a tick label of its axis, that overlap;
- a table or chart wider than its column or the window, or a page that scrolls sideways.

Chromium comes from Debian's packages (/usr/bin/chromium; .ci/run installs it). Without it the
tests fail under CI (the CI variable is set) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
WIDTH = 1_400

# the test's own measurement (not the page's): runs when the page has drawn every chart
_MEASURE = r"""
<script>
(function(){
  var SLACK = 0.5;
  function box(e){ return e.getBoundingClientRect(); }
  function name(e){ return (e.textContent || '').trim().slice(0, 60); }
  function overlap(a, b){
    var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    return w > 1 && h > 1;
  }
  function visible(e){ var r = box(e); return r.width > 0 && r.height > 0 &&
    getComputedStyle(e).visibility !== 'hidden' && e.getAttribute('opacity') !== '0'; }
  function measure(){
    var out = {width: document.documentElement.clientWidth, charts: 0, labels: 0, tables: 0,
               problems: []};
    var vw = out.width;
    if (document.documentElement.scrollWidth > vw + 1)
      out.problems.push('the page scrolls sideways: ' + document.documentElement.scrollWidth +
                        ' px wide in a ' + vw + ' px window');
    document.querySelectorAll('table').forEach(function(t, i){
      out.tables += 1;
      var r = box(t), p = t.parentElement, pr = box(p);
      var head = name(t.querySelector('th') || t);
      if (r.right > vw + SLACK) out.problems.push('table ' + i + ' (' + head + ') ends at ' +
                                                  r.right + ' px, past the window');
      if (r.right > pr.right + SLACK && p.scrollWidth > p.clientWidth + 1)
        out.problems.push('table ' + i + ' (' + head + ') overflows its column: ' +
                          Math.round(r.width) + ' px in ' + Math.round(pr.width) + ' px');
    });
    document.querySelectorAll('.js-plotly-plot').forEach(function(div){
      out.charts += 1;
      var c = box(div), title = name(div.querySelector('.gtitle') || div) || div.id;
      if (c.right > vw + SLACK) out.problems.push('chart "' + title + '" ends past the window');
      var labels = div.querySelectorAll('g.xtick text, g.ytick text, g.x2tick text, ' +
        'g.y2tick text, .g-xtitle text, .g-ytitle text, .g-x2title text, .g-y2title text, ' +
        '.gtitle, .legendtext');
      labels.forEach(function(l){
        if (!visible(l)) return;
        out.labels += 1;
        var r = box(l);
        if (r.left < c.left - SLACK || r.right > c.right + SLACK || r.top < c.top - SLACK ||
            r.bottom > c.bottom + SLACK)
          out.problems.push('chart "' + title + '": label "' + name(l) + '" is cut off');
      });
      ['x', 'y', 'x2', 'y2'].forEach(function(ax){
        var ticks = Array.prototype.filter.call(div.querySelectorAll('g.' + ax + 'tick text'),
                                                visible);
        for (var i = 0; i < ticks.length; i++)
          for (var j = i + 1; j < ticks.length; j++)
            if (overlap(box(ticks[i]), box(ticks[j])))
              out.problems.push('chart "' + title + '": ' + ax + ' tick labels "' +
                                name(ticks[i]) + '" and "' + name(ticks[j]) + '" overlap');
        div.querySelectorAll('.g-' + ax + 'title text').forEach(function(t){
          if (!visible(t)) return;
          ticks.forEach(function(k){
            if (overlap(box(t), box(k)))
              out.problems.push('chart "' + title + '": ' + ax + ' axis title "' + name(t) +
                                '" overlaps the tick label "' + name(k) + '"');
          });
        });
      });
    });
    var pre = document.createElement('pre');
    pre.id = 'layout-check';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  function wait(){
    var b = document.body;
    if (b.getAttribute('data-charts-done') === 'true' ||
        b.getAttribute('data-charts-expected') === '0' ||
        b.getAttribute('data-script-errors') !== '0') { setTimeout(measure, 50); }
    else { setTimeout(wait, 50); }
  }
  wait();
})();
</script>
"""


def chromium_dom(page: Path, profile: Path, *, width: int = WIDTH) -> str:
    """The page's DOM after it ran (virtual time: timers and promises complete)."""
    if not CHROMIUM or not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: CI installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},1000",
         "--hide-scrollbars", "--virtual-time-budget=20000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2_000:]
    return result.stdout


def layout(page: Path, profile: Path, *, width: int = WIDTH) -> dict[str, Any]:
    """Measure ``page`` at ``width`` px: {"width", "charts", "labels", "tables", "problems"}."""
    probe = page.with_name(page.stem + ".layout-probe.html")
    text = page.read_text(encoding="utf-8")
    cut = text.rindex("</body>")
    probe.write_text(text[:cut] + _MEASURE + text[cut:], encoding="utf-8")
    try:
        dom = chromium_dom(probe, profile, width=width)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.DOTALL)
    assert found, "the layout check did not run: " + dom[-1_000:]
    result: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"')
                                        .replace("&lt;", "<").replace("&gt;", ">")
                                        .replace("&amp;", "&"))
    return result
