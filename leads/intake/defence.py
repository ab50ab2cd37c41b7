"""The defences a submission passes at the edge, in order of cost (cheapest first, so a
flood of rejected requests stays cheap):

1. origin lock: a browser on a site not in LEADS_ALLOWED_ORIGINS gets 403;
2. rate limit, per client IP, tested before the body is even read (429, nothing stored);
3. (the body is parsed and validated: 422)
4. rate limit per IP, email and phone, tested now that the submission is valid (429);
5. the spam rules (leads/abuse/rules.py; honeypot, time trap, captcha and content rules, in
   that order): a submission they find reasons in is *kept*, flagged as spam with its
   reasons and not announced; staff can release it (`leads spam release`);
6. the limits are consumed: the IP's always, the email's and phone's only when the
   submission is not flagged. A bot typing someone else's address into its spam must not
   use up that person's allowance (three honeypot posts from three addresses would lock
   them out for a day with the default 30/day); its own address pays.

Only the rate limit and the origin lock refuse; everything else flags, because a real
patient misjudged as a bot must not lose what they wrote. Refused (429) and flagged
submissions wait in the tarpit (``leads/abuse/tarpit.py``) before they are answered or
written, so a client flooding us with them is slowed to one request per connection per
``LEADS_TARPIT_SECONDS``, and the flagged ones released together share a transaction.

Time (form tokens, rate windows, the tarpit) is read from one clock, the real one unless
``from_settings`` is given another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from leads.abuse.clientip import IPNetwork, client_ip, parse_networks
from leads.abuse.clock import SYSTEM_CLOCK, Clock
from leads.abuse.defaults import built_in_rules
from leads.abuse.ratelimit import SubmissionLimiter, submission_keys
from leads.abuse.rules import RuleSetup, SpamRule, SpamRules, Visit
from leads.abuse.tarpit import Tarpit
from leads.abuse.tokens import issue_form_token
from leads.errors import OriginNotAllowed, TooManySubmissions
from leads.intake.submission import Submission
from leads.outbound import HTTPClient
from leads.settings import Settings

CLIENT_IP_CACHE = 4096  # (peer, X-Forwarded-For) answers kept; emptied when full
_UNSEEN = "\0unseen"


@dataclass
class Defences:
    settings: Settings
    limiter: SubmissionLimiter
    rules: list[SpamRule]  # in the order they run
    trusted_proxies: tuple[IPNetwork, ...]
    tarpit: Tarpit
    clock: Clock
    _client_ips: dict[tuple[str | None, str | None], str | None] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        http: HTTPClient,
        *,
        clock: Clock = SYSTEM_CLOCK,
        rules: SpamRules | None = None,
    ) -> Defences:
        """The defences for these settings; ``rules`` defaults to the built-in ones."""
        rules = built_in_rules() if rules is None else rules
        return cls(
            settings=settings,
            limiter=SubmissionLimiter(
                settings.rate_limit, settings.rate_limit_storage, clock=clock
            ),
            rules=rules.build(RuleSetup(settings, http)),
            trusted_proxies=parse_networks(settings.trusted_proxies),
            tarpit=Tarpit(
                seconds=settings.tarpit_seconds, capacity=settings.tarpit_capacity, clock=clock
            ),
            clock=clock,
        )

    def form_token(self, form: str) -> str:
        """A time-trap token for ``form``, issued now."""
        assert self.settings.secret_key is not None  # create_app makes sure there is one
        return issue_form_token(self.settings.secret_key.get_secret_value(), form, self.clock.now())

    def client_ip(self, request: Request) -> str | None:
        peer = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-for")
        # A pure function of the peer and the header: keep-alive connections and returning
        # proxies ask the same question again and again (ipaddress parsing is not cheap).
        seen = self._client_ips.get((peer, forwarded), _UNSEEN)
        if seen is not _UNSEEN:
            return seen
        answer = client_ip(peer, forwarded, self.trusted_proxies)
        if forwarded is None or len(forwarded) <= 200:  # a long header is not kept
            if len(self._client_ips) >= CLIENT_IP_CACHE:
                self._client_ips.clear()
            self._client_ips[(peer, forwarded)] = answer
        return answer

    async def before_reading(self, request: Request, ip: str | None) -> None:
        """Origin lock and the cheap per-IP rate-limit test."""
        origin = request.headers.get("origin")
        allowed = self.settings.allowed_origins
        # "Origin: null" (a sandboxed frame, a page with Referrer-Policy: no-referrer) names
        # no site, so it is not one of ours: refused unless "null" itself is listed.
        if allowed and origin is not None and "*" not in allowed:
            origin = origin.lower()
            if origin not in allowed and not self._own(origin, request):
                raise OriginNotAllowed()
        if ip is not None and (
            wait := await self.limiter.test(submission_keys(client_ip=ip, email=None, phone=None))
        ):
            await self._refuse(wait)

    async def _refuse(self, wait: int) -> None:
        """429, after the tarpit's wait; at once, closing the connection, when it is full."""
        if await self.tarpit.hold():
            raise TooManySubmissions(retry_after=wait)
        raise TooManySubmissions(retry_after=wait, close=True)

    @staticmethod
    def _own(origin: str, request: Request) -> bool:
        """Our own pages (the hosted form) post with our own host as their origin."""
        try:
            host = urlsplit(origin).netloc
        except ValueError:  # "http://[" and the like
            return False
        return bool(host) and host == request.headers.get("host", "").lower()

    async def screen(self, submission: Submission, *, ip: str | None) -> Submission:
        """Test the submission against its limits, judge it, then count it: the same
        submission, with spam reasons added when it looks automated."""
        keys = submission_keys(client_ip=ip, email=submission.email, phone=submission.phone)
        if wait := await self.limiter.test(keys):
            await self._refuse(wait)
        judged = await self._judge(submission, ip=ip)
        if judged.is_spam:
            keys = submission_keys(client_ip=ip, email=None, phone=None)
        # Tests again as it consumes: a refused request still uses up nothing.
        if wait := await self.limiter.hit(keys):
            await self._refuse(wait)
        if judged.is_spam:
            # Held like a 429; when the tarpit is full it is stored at once all the same
            # (a person misjudged as a bot must not lose it to someone else's flood).
            await self.tarpit.hold()
        return judged

    async def _judge(self, submission: Submission, *, ip: str | None) -> Submission:
        """Every spam rule, in order: reasons to flag, never a refusal."""
        visit = Visit(client_ip=ip, now=self.clock.now())
        for rule in self.rules:
            submission = submission.flagged(*await rule.check(submission, visit))
        return submission

    async def close(self) -> None:
        await self.limiter.aclose()
