"""Check the built docs site in a real browser: headless Chromium (the system's, e.g. Debian's `chromium`) driven by
playwright loads every page from a local HTTP server. Fails on a console error, a failed request (404 ...), a link
(sidebar or in-page) to a page or anchor that does not exist, an image that does not load, a search for
`ARATCallback` that finds nothing, a general index that does not list the API, or a quick start without its
training-curve plot; and on how the pages read (issue 20): a paragraph ending in ':' before prose (the code it announced
is hidden), a test or assertion visible on a tutorial page, anything cut off or scrolled on the right, an API entry with
nothing under its signature, a "source" link that leaves the site. Saves full-page screenshots of the home page, the
quick start and the Callbacks page and prints their paths.

    python tools/build_docs.py && python tests/docs_browser.py [_docs] [--shots DIR]
"""
import sys, shutil, tempfile, argparse, threading, functools
from pathlib import Path
from urllib.parse import urlsplit, unquote
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler

root = Path(__file__).resolve().parent.parent
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

QUALITY = dict(colon="a paragraph ending in ':' is followed by prose (the code it announced is hidden)",
               asserts="a test or assertion is visible on a tutorial page (hide it: `#| hide`)",
               clipped="cut off or scrolled on the right", empty="an API entry with no text under its signature",
               sources="a 'source' link leaves the site")

class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

def serve(site):
    "A local HTTP server for `site` on a free port, in a daemon thread; returns the server and its base URL."
    srv = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'

def chromium():
    "The system Chromium (playwright's own browser downloads are not used)."
    for p in ('chromium', 'chromium-browser', 'google-chrome'):
        if (w := shutil.which(p)): return w
    sys.exit("docs browser check: no chromium on PATH (Debian: apt-get install chromium)")

IMAGES_JS = """() => Promise.race([new Promise(r => setTimeout(r, 20000)), Promise.all(Array.from(document.images).map(i =>
  i.complete ? null : new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })))])"""   # images settled

PAGE_JS = """() => ({
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => ({href: a.href, raw: a.getAttribute('href'),
         where: a.closest('.bd-sidebar-primary, .bd-sidebar, nav') ? 'sidebar' : 'page'})),
  broken_imgs: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  n_imgs: document.images.length,
})"""

# How the pages read, measured in the rendered page (issue 20): each list must be empty.
QUALITY_JS = r"""(tutorial) => {
  const art = document.querySelector('article') || document.body;
  const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length) && getComputedStyle(e).visibility !== 'hidden';
  const short = t => t.replace(/\s+/g, ' ').trim().slice(0, 90);
  // a paragraph that announces something (ends in ':') followed by prose, a heading or nothing: the code it announced is hidden
  const colon = Array.from(art.querySelectorAll('p')).filter(p => visible(p) && !p.closest('.cell_output, table, li, dd, .admonition')
      && /:$/.test(p.textContent.trim())).filter(p => { const n = p.nextElementSibling;
      return !n || /^(P|H[1-6])$/.test(n.tagName) || n.tagName === "SECTION"; }).map(p => (p.nextElementSibling ? p.nextElementSibling.tagName : "END") + " " + short(p.textContent));
  // a check shown on a tutorial page: `assert`, test_eq, test_close ... in a visible code cell
  const asserts = !tutorial ? [] : Array.from(art.querySelectorAll('.cell_input pre')).filter(visible).flatMap(pre =>
      pre.textContent.split('\n').filter(l => /(^|[^\w.])(assert\b|test_\w+\()/.test(l)).map(l => short(l)));
  // anything cut off or scrolled on the right: a code block, output or table wider than its box or than the article
  const right = art.getBoundingClientRect().right;
  const clipped = Array.from(art.querySelectorAll('pre, table, .cell_output > div, math')).filter(visible).filter(e =>
      e.scrollWidth > e.clientWidth + 2 || e.getBoundingClientRect().right > right + 2).map(e => e.tagName.toLowerCase() + ': ' + short(e.textContent))
    .concat(Array.from(document.querySelectorAll('.bd-sidebar-secondary a, .bd-sidebar-primary a')).filter(visible).filter(a => {
      const box = a.closest('.bd-sidebar-secondary, .bd-sidebar-primary'); return box && a.getBoundingClientRect().right > box.getBoundingClientRect().right + 1 || a.scrollWidth > a.clientWidth + 2;
    }).map(a => 'sidebar link: ' + short(a.textContent)));
  // an API entry with nothing under its heading but the signature (no docstring, no parameter table)
  const empty = Array.from(art.querySelectorAll('section')).filter(s => { const h = s.querySelector(':scope > h3, :scope > h4');
      if (!h) return false; const kids = Array.from(s.children).filter(k => k !== h && !k.matches('span[id]'));
      if (!kids.length || !kids.every(k => k.matches('.cell.tag_remove-input'))) return false;
      const out = Array.from(kids).map(k => Array.from(k.querySelectorAll('.cell_output > *')).filter(e => !e.matches('p:has(> a:only-child), div[class^="highlight"]')).length);
      return out.every(n => n === 0); }).map(s => short(s.querySelector('h3, h4').textContent));
  // source links must be pages of this site (an external one points at a repository that may not exist)
  const sources = Array.from(art.querySelectorAll('a')).filter(a => a.textContent.trim() === 'source' && a.host !== location.host).map(a => a.href);
  return {colon, asserts, clipped, empty, sources};
}"""

def check(site, shots):
    try: from playwright.sync_api import sync_playwright
    except ImportError: sys.exit('docs browser check: playwright is missing: pip install -e ".[docs]"')
    site = Path(site).resolve()
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html') if not p.name.startswith('_')
                   and '_static' not in p.parts)   # with the library's source pages (_src/), whose line anchors are linked
    if 'index.html' not in pages: sys.exit(f"docs browser check: no index.html in {site}: build the docs first")
    srv, base = serve(site)
    errors, ids, links, n_links, n_imgs = [], {}, [], 0, 0
    quality = dict.fromkeys(QUALITY, 0)
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as prof:
            ctx = pw.chromium.launch_persistent_context(prof, executable_path=chromium(), headless=True, args=FLAGS,
                                                         viewport={'width': 1280, 'height': 900})
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            current = {}
            page.on('console', lambda m: m.type == 'error' and errors.append(
                f"{current['p']}: console error: {m.text} ({m.location.get('url', '')})"))
            page.on('pageerror', lambda e: errors.append(f"{current['p']}: page error: {e}"))
            # a request the browser cancels itself (a speculative prefetch of a linked page, a load overtaken by the next goto)
            # is no broken link: a broken one shows up as an HTTP error, a missing page or a broken image
            page.on('requestfailed', lambda r: r.failure != 'net::ERR_ABORTED' and
                    errors.append(f"{current['p']}: request failed: {r.url} ({r.failure})"))
            page.on('response', lambda r: r.status >= 400 and errors.append(f"{current['p']}: HTTP {r.status}: {r.url}"))
            for p in pages:
                current['p'] = p
                page.goto(base + p, wait_until='load', timeout=60000)
                page.evaluate(IMAGES_JS)
                info = page.evaluate(PAGE_JS)
                ids[p] = set(info['ids'])
                n_imgs += info['n_imgs']
                errors += [f"{p}: image does not load: {s}" for s in info['broken_imgs']]
                links += [(p, l) for l in info['links']]
                if p.startswith('_src/'): continue
                q = page.evaluate(QUALITY_JS, p.startswith('tutorials/'))
                for k, v in q.items():
                    quality[k] += len(v)
                    errors += [f"{p}: {QUALITY[k]}: {x}" for x in v]
            # every internal link: the page exists (was served with 200 above, or is fetched now) and so does the anchor
            for p, l in links:
                u = urlsplit(l['href'])
                if not l['href'].startswith(base): continue
                n_links += 1
                target = unquote(u.path[len(urlsplit(base).path):]) or 'index.html'
                if target.endswith('/'): target += 'index.html'
                if target not in ids:
                    if not (site/target).is_file():
                        errors.append(f"{p}: {l['where']} link to a missing page: {l['raw']}")
                    continue
                if u.fragment and unquote(u.fragment) not in ids[target]:
                    errors.append(f"{p}: {l['where']} link to a missing anchor: {l['raw']}")
            # search: the search page finds ARATCallback (Sphinx's client-side index)
            current['p'] = 'search.html'
            page.goto(base + 'search.html?q=ARATCallback', wait_until='load', timeout=60000)
            try:
                page.wait_for_selector('#search-results li a', timeout=20000)
                hits = page.eval_on_selector_all('#search-results li a', 'as => as.map(a => a.getAttribute("href"))')
            except Exception: hits = []
            if not any('callbacks' in h for h in hits):
                errors.append(f"search.html?q=ARATCallback: no result on the callbacks page (results: {hits[:5]})")
            # the general index lists the API (an index page with no entries is no help)
            current['p'] = 'genindex.html'
            page.goto(base + 'genindex.html', wait_until='load', timeout=60000)
            entries = page.eval_on_selector_all('article table.indextable a', 'as => as.map(a => a.textContent.trim())')
            if not {'ARATCallback', 'arat_learner', 'pgd'} <= set(entries):
                errors.append(f"genindex.html: the general index does not list the API ({len(entries)} entries: {entries[:5]})")
            # the quick start shows its training-curve plot: the cell that plots train_loss has a loaded, visible image
            current['p'] = 'tutorials/quickstart.html'
            page.goto(base + 'tutorials/quickstart.html', wait_until='load', timeout=60000); page.evaluate(IMAGES_JS)
            plot = page.evaluate("""() => {
                const cell = Array.from(document.querySelectorAll('div.cell')).find(c =>
                    (c.querySelector('.cell_input') || {}).textContent?.includes('train_loss') && c.querySelector('.cell_output img'));
                if (!cell) return null;
                const img = cell.querySelector('.cell_output img'); img.scrollIntoView();
                const r = img.getBoundingClientRect();
                return {w: img.naturalWidth, h: img.naturalHeight, shown_w: r.width, shown_h: r.height};
            }""")
            if not plot or plot['w'] < 400 or plot['shown_h'] < 100:
                errors.append(f"tutorials/quickstart.html: no training-curve plot shown (found {plot})")
            shots = Path(shots or tempfile.mkdtemp(prefix='arat-docs-shots-')); shots.mkdir(parents=True, exist_ok=True)
            for name, p in [('home', 'index.html'), ('quickstart', 'tutorials/quickstart.html'), ('callbacks', 'callbacks.html')]:
                page.goto(base + p, wait_until='load', timeout=60000); page.evaluate(IMAGES_JS)
                # the sidebars are sticky: a viewport as tall as the page keeps them in place in a full-page shot
                page.set_viewport_size({'width': 1280, 'height': min(page.evaluate('document.body.scrollHeight'), 20000)})
                page.screenshot(path=str(shots/f'{name}.png'), full_page=True)
                page.set_viewport_size({'width': 1280, 'height': 900})
                print(f"docs browser check: screenshot of {p}: {shots/f'{name}.png'}")
            ctx.close()
    finally: srv.shutdown()
    print("docs browser check: reading:", ", ".join(f"{v} {k}" for k, v in quality.items()))
    print(f"docs browser check: {len(pages)} pages, {n_links} internal links, {n_imgs} images, search, index "
          f"({len(entries)} entries), quick-start plot "
          f"({plot and '%dx%d px' % (plot['w'], plot['h'])})")
    if errors:
        print(f"docs browser check: {len(errors)} problems:", *sorted(set(errors)), sep='\n  ')
        sys.exit(1)
    print("docs browser check: OK")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('site', nargs='?', default=str(root/'_docs'))
    ap.add_argument('--shots', help="folder for the screenshots (default: a new temporary folder)")
    a = ap.parse_args()
    check(a.site, a.shots)
