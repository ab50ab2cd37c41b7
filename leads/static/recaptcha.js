// reCAPTCHA v3 has no widget: ask it for a token as the form is sent and put the token in
// the hidden g-recaptcha-response field. Loaded only when LEADS_CAPTCHA_PROVIDER=recaptcha.
(function () {
  var field = document.querySelector("input[data-leads-recaptcha]");
  if (!field) return;
  var form = field.form;
  var siteKey = field.getAttribute("data-leads-recaptcha");
  form.addEventListener("submit", function (event) {
    if (field.value || typeof grecaptcha === "undefined") return;
    event.preventDefault();
    grecaptcha.ready(function () {
      grecaptcha.execute(siteKey, { action: "submit" }).then(function (token) {
        field.value = token;
        form.submit();
      });
    });
  });
})();
