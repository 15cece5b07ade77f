package cmd

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromium runs headless Chromium on page with flags, offline: no
// network service, no component or sync traffic, a profile of its own.
func chromium(t *testing.T, bin, page string, flags ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(flags, " "), err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// inkShare is the share of pixels of img unlike its top-left corner, the
// page's background: 0 for a blank page.
func inkShare(img image.Image) float64 {
	b := img.Bounds()
	br, bg, bb, _ := img.At(b.Min.X, b.Min.Y).RGBA()
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if diff(r, br)+diff(g, bg)+diff(bl, bb) > 0x1800 {
				ink++
			}
		}
	}
	return float64(ink) / float64(b.Dx()*b.Dy())
}

func diff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestHTMLInChromium opens each page in a real browser, offline: the
// screenshot must not be blank, and the page's text once parsed (its DOM)
// must hold every figure of the report's text. The watch page is the
// report package's golden, the others are rendered from the fixtures.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian's chromium package; .ci/run installs it): the pages are not opened in a browser")
	}
	dir := t.TempDir()
	type page struct {
		name string
		figs []string
	}
	var pages []page
	for _, c := range htmlCases {
		if c.name == "trace-leaker-ff" || c.name == "mallocinfo-jemalloc" || c.name == "explain-jvm" {
			continue // the same page shapes as the others: time is better spent elsewhere
		}
		if err := os.WriteFile(filepath.Join(dir, c.name+".html"), []byte(renderHTML(t, c.args)), 0o644); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page{c.name, textFigures(t, c.args)})
	}
	watch, err := os.ReadFile("../fixtures/golden/html/watch.html")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "watch.html"), watch, 0o644); err != nil {
		t.Fatal(err)
	}
	pages = append(pages, page{"watch", []string{"168.0 MiB", "+128.0 MiB", "malloc-free-retained"}})
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, p.name+".html")
			shot := filepath.Join(dir, p.name+".png")
			chromium(t, bin, path, "--window-size=1280,900", "--screenshot="+shot)
			f, err := os.Open(shot)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if ink := inkShare(img); ink < 0.03 {
				t.Errorf("the screenshot is %.1f %% ink: blank?", 100*ink)
			}
			dom := string(chromium(t, bin, path, "--dump-dom"))
			if !strings.Contains(dom, `class="block"`) {
				t.Fatalf("the DOM is not memdiag's page: %.200q", dom)
			}
			if m := missingFigures(p.figs, pageText(dom)); len(m) > 0 {
				t.Errorf("the DOM lacks %d of %d figures: %q", len(m), len(p.figs), m)
			}
		})
	}
}

// exercise drives the page's script as a reader would — a search, a
// click on a frame, a click on a column — and writes what the page then
// shows into the DOM, for --dump-dom to carry out.
const exercise = `<script>
window.addEventListener("load", function () {
  var input = document.querySelector(".flame-search");
  input.value = "leak_buffer";
  input.dispatchEvent(new Event("input"));
  var match = document.querySelector(".flame-match").textContent;
  var frame = document.querySelector('g.fr[data-n^="leak_buffer"]');
  frame.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  var zoomed = frame.querySelector("rect").getAttribute("width");
  var shown = document.querySelectorAll("g.fr:not(.out)").length;
  var table = document.querySelector("table.sortable");
  var bytes = Array.prototype.findIndex.call(table.tHead.rows[0].cells, function (c) { return c.textContent === "BYTES"; });
  table.tHead.rows[0].cells[bytes].click();
  var first = table.tBodies[0].rows[0].cells[bytes].textContent;
  document.body.setAttribute("data-exercise", match + "|" + zoomed + "|" + shown + "|" + first);
});
</script>`

// TestHTMLScriptInChromium: in a real browser, the trace page's search
// counts the frames and bytes that match, a click zooms a frame to the
// full width, and a click on BYTES sorts the summary, largest first.
func TestHTMLScriptInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian's chromium package; .ci/run installs it): the page's script is not run in a browser")
	}
	page := renderHTML(t, []string{"trace", "../fixtures/traces/leaker-cg.perf"})
	page = strings.Replace(page, "</body>", exercise+"</body>", 1)
	path := filepath.Join(t.TempDir(), "trace.html")
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := string(chromium(t, bin, path, "--dump-dom"))
	_, after, ok := strings.Cut(dom, `data-exercise="`)
	result, _, _ := strings.Cut(after, `"`)
	parts := strings.Split(result, "|")
	if !ok || len(parts) != 4 {
		t.Fatalf("the script did not run: %q", result)
	}
	// leak_buffer's five mappings hold 5.0 MiB of the 43.0 MiB outstanding.
	if parts[0] != "1 frame matches, 11.6 % of the bytes" {
		t.Errorf("search says %q, want 1 frame and 11.6 %% (5.0 of 43.0 MiB)", parts[0])
	}
	if parts[1] != "1000.0" {
		t.Errorf("the clicked frame is %s wide, want the full 1000", parts[1])
	}
	if n, _ := strconv.Atoi(parts[2]); n < 5 || n > 12 {
		t.Errorf("%s frames shown once zoomed: its callers and its callees, not all", parts[2])
	}
	if parts[3] != "87.7 MiB" {
		t.Errorf("the summary sorted by BYTES starts with %q, want the 87.7 MiB mapped over the trace", parts[3])
	}
}
