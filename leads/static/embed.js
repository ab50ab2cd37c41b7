// For a clinic's own form that posts to leads: fills in the time-trap token, and where the
// visitor is: page_url (this page's address without its query) and the utm_* values of
// this page's query. A hidden input the page already gives a value is left as it is.
//   <form method="post" action="https://leads.clinic.example/f/dry-needling"
//         data-leads-form="dry-needling"> ... </form>
//   <script src="https://leads.clinic.example/embed.js" defer></script>
// The page's origin must be in LEADS_ALLOWED_ORIGINS (the token is fetched with CORS).
(function () {
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src).origin;
  var forms = document.querySelectorAll("form[data-leads-form]");
  var query = new URLSearchParams(location.search);
  var found = { page_url: location.origin + location.pathname };
  ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"].forEach(function (name) {
    if (query.get(name)) found[name] = query.get(name);
  });

  Array.prototype.forEach.call(forms, function (form) {
    Object.keys(found).forEach(function (name) {
      var field = form.querySelector('input[name="' + name + '"]');
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = name;
        form.appendChild(field);
      }
      if (!field.value) field.value = found[name]; // a value the page set is kept
    });
    var slug = form.getAttribute("data-leads-form");
    fetch(base + "/api/form-token?form=" + encodeURIComponent(slug), { credentials: "omit" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        var input = form.querySelector('input[name="form_token"]');
        if (!input) {
          input = document.createElement("input");
          input.type = "hidden";
          input.name = "form_token";
          form.appendChild(input);
        }
        input.value = data.form_token;
      })
      .catch(function () { /* no token: the submission is still accepted, see the docs */ });
  });
})();
