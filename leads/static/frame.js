// Loaded by the hosted form and thank-you pages only when they are shown in a frame: tells
// the parent page how tall this page is, so the frame can fit it (docs/forms.md has the
// parent's snippet). The message holds a height and, in the first message of a page shown
// after a submit (the thank-you page, or the form again with errors), "submitted": true;
// nothing anyone typed:
//   {"type": "leads:height", "height": 1480, "submitted": false}
(function () {
  if (window.parent === window) return;
  var script = document.currentScript;
  var submitted = !!script && script.getAttribute("data-after-submit") === "true";
  var root = document.documentElement;
  var card = document.querySelector("main");
  // On a phone the card fills the viewport (min-height: 100vh). In a frame the viewport is
  // the frame, so the page would never report less than the frame's height and could only
  // grow: let the card be as tall as what it holds.
  if (card) card.style.minHeight = "0";

  var sent = 0;
  function post() {
    var height = Math.ceil(root.getBoundingClientRect().height);
    if (height === sent) return;
    sent = height;
    // "*": the height is no secret, and the page cannot know which site framed it. The
    // parent's snippet checks that the message comes from this frame and this origin.
    window.parent.postMessage(
      { type: "leads:height", height: height, submitted: submitted }, "*"
    );
    submitted = false; // the parent scrolls once, not on every later resize
  }

  // After a submit the error summary (or the thank-you text) is at the top. Browsers ignore
  // `autofocus` in a frame from another site; a script may still move focus, without
  // scrolling, since the parent scrolls to the top of the frame.
  var summary = document.getElementById("error-summary");
  if (summary && document.activeElement !== summary) summary.focus({ preventScroll: true });

  post();
  if (typeof ResizeObserver === "function") new ResizeObserver(post).observe(root);
  window.addEventListener("load", post);
  window.addEventListener("resize", post);
})();
