"""The console's pages: each handler reads through the service and renders a template.

Every page but sign-in needs a signed-in session (else it redirects to the
sign-in form), every POST needs the session's CSRF token (else 403), and
every answer carries the console's Content-Security-Policy (`SecurityHeaders`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from anyio import to_thread
from prometheus_client import Counter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import Authenticator
from app.candidates import Candidate, check_candidate, check_file_name, summary
from app.console.sessions import CSRF_FIELD, Session, Sessions, csrf_matches
from app.console.sources import read_sources
from app.service import Service
from engine.errors import AuthError, QuestlineError
from engine.events import check_identifier
from engine.explain import Explanation
from engine.periods import Granularity
from engine.progress import PlayerProgress
from engine.simulation import Simulated

TEMPLATES = Path(__file__).with_name("templates")
#: Days of the overview's active-players chart, instances of a challenge's chart.
ACTIVE_DAYS, INSTANCES = 30, 8
#: Ledger lines and unlocks per page of the player page.
PAGE = 20
#: Largest candidate text accepted from the program page, in characters.
MAX_CANDIDATE = 256 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

Handler = Callable[[Request, Session], Awaitable[Response]]


class SecurityHeaders:
    """CSP without inline scripts or styles, no framing, no sniffing, no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not scope["path"].startswith("/console/static"):
                    headers.append((b"cache-control", b"no-store"))
            await send(message)

        await self.app(scope, receive, with_headers)


class Console:
    def __init__(self, service: Service, authenticator: Authenticator, sessions: Sessions) -> None:
        self.service = service
        self.authenticator = authenticator
        self.sessions = sessions
        self.templates = Jinja2Templates(directory=TEMPLATES)
        self.templates.env.filters["local_days"] = local_days

    # --- plumbing -------------------------------------------------------------

    def render(
        self, request: Request, name: str, session: Session, status_code: int = 200, **context: Any
    ) -> Response:
        program = self.service.program
        return self.templates.TemplateResponse(
            request,
            name,
            {
                "session": session,
                "csrf_field": CSRF_FIELD,
                "program": program,
                "development": self.service.settings.is_development,
                **context,
            },
            status_code=status_code,
        )

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for signed-in sessions only; POSTs must carry the CSRF token."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.read(request)
            if session is None or not session.signed_in:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(
                    f"/console/sign-in?{urlencode({'next': target})}", status_code=303
                )
            if request.method == "POST" and not await self._csrf_ok(request, session):
                return self.refused(request, session)
            return await handler(request, session)

        return endpoint

    async def _csrf_ok(self, request: Request, session: Session | None) -> bool:
        form = await request.form(max_files=20, max_fields=50, max_part_size=MAX_CANDIDATE)
        return csrf_matches(session, form.get(CSRF_FIELD))

    def refused(self, request: Request, session: Session | None) -> Response:
        shown = session or self.sessions.new(signed_in=False)
        response = self.render(request, "refused.html", shown, status_code=403)
        if session is None:
            self.sessions.save(response, shown, request)
        return response

    # --- signing in and out ---------------------------------------------------

    async def sign_in(self, request: Request) -> Response:
        session = self.sessions.read(request)
        target = _local(request.query_params.get("next"))
        if request.method == "POST":
            if not await self._csrf_ok(request, session):
                return self.refused(request, session)
            form = await request.form()
            key = str(form.get("api_key", "")).strip()
            error = await self._check_key(key)
            if error is None:
                signed_in = RedirectResponse(target, status_code=303)
                self.sessions.save(signed_in, self.sessions.new(signed_in=True), request)
                return signed_in
        else:
            error = None
            if session is not None and session.signed_in:
                return RedirectResponse(target, status_code=303)
        session = session if session is not None and not session.signed_in else None
        session = session or self.sessions.new(signed_in=False)
        response = self.render(
            request,
            "sign_in.html",
            session,
            status_code=401 if error else 200,
            error=error,
            next=target,
            signed_out=request.query_params.get("signed-out") is not None,
            can_sign_in=bool(self.service.settings.api_keys),
        )
        self.sessions.save(response, session, request)
        return response

    async def _check_key(self, key: str) -> str | None:
        """Why this key cannot open the console, or None."""
        if not key:
            return "Enter an API key (QUESTLINE_API_KEYS)."
        try:
            principal = await self.authenticator.authenticate_token(key)
        except AuthError:
            return "That is not one of this server's API keys."
        if not principal.is_admin:
            return "That is a player token; the console needs an API key."
        return None

    async def sign_out(self, request: Request, session: Session) -> Response:
        response = RedirectResponse("/console/sign-in?signed-out", status_code=303)
        self.sessions.end(response)
        return response

    # --- pages ----------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        service = self.service
        program = service.program
        days = await service.analytics.retention(Granularity.DAY, ACTIVE_DAYS)
        points = await service.analytics.points()
        tiers = await service.economy.tier_counts() if program.tiers is not None else None
        active = {
            "labels": [day.period.key.partition(":")[2] for day in days],
            "series": [{"label": "Active players", "data": [d.customers_at_end for d in days]}],
        }
        points_chart = {
            "labels": ["Issued", "Redeemed", "Expired", "Deducted", "Outstanding"],
            "series": [
                {
                    "label": "Points",
                    "data": [
                        points.issued,
                        points.redeemed,
                        points.expired,
                        points.deducted,
                        points.outstanding,
                    ],
                }
            ],
        }
        return self.render(
            request,
            "overview.html",
            session,
            active=active,
            points=points_chart,
            tiers=tiers,
            players_with_accounts=sum(count for _, count in tiers or ()),
        )

    async def rates(self, request: Request, session: Session) -> Response:
        """This process's counters, sampled by the overview for its per-minute rates."""
        metrics = self.service.metrics
        return JSONResponse({"events": _total(metrics.events), "unlocks": _total(metrics.unlocks)})

    async def challenges(self, request: Request, session: Session) -> Response:
        service = self.service
        program = service.program
        sources = await to_thread.run_sync(
            read_sources, service.settings.seed_path, program.version
        )
        participation = await service.analytics.challenges()
        rows = []
        for challenge_id, challenge in program.challenges.items():
            instances = await service.analytics.challenge_instances(challenge_id, INSTANCES)
            instances.reverse()  # oldest first, as a chart reads
            rows.append(
                {
                    "id": challenge_id,
                    "challenge": challenge,
                    "total": participation.get(challenge_id),
                    "instances": instances,
                    "chart": {
                        "labels": [period or "window" for period, _ in instances],
                        "series": [
                            {"label": "Started", "data": [p.started for _, p in instances]},
                            {"label": "Completed", "data": [p.completed for _, p in instances]},
                        ],
                    },
                    "source": sources.items.get(("challenges", challenge_id)),
                }
            )
        streak_stats = await service.analytics.streaks()
        return self.render(
            request,
            "challenges.html",
            session,
            challenges=rows,
            milestones=[
                (milestone_id, milestone, sources.items.get(("milestones", milestone_id)))
                for milestone_id, milestone in program.milestones.items()
            ],
            streaks=[
                (
                    streak_id,
                    streak,
                    streak_stats.get(streak_id),
                    sources.items.get(("streaks", streak_id)),
                )
                for streak_id, streak in program.streaks.items()
            ],
            sources_current=sources.current,
        )

    async def find_player(self, request: Request, session: Session) -> Response:
        player_id = request.query_params.get("id", "").strip()
        error = None
        if player_id:
            try:
                check_identifier("player id", player_id)
            except QuestlineError as refused:
                error = str(refused)
            else:
                return RedirectResponse(f"/console/players/{quote(player_id)}", status_code=303)
        return self.render(
            request,
            "find_player.html",
            session,
            player_id=player_id,
            error=error,
            status_code=400 if error else 200,
        )

    async def player(self, request: Request, session: Session) -> Response:
        service = self.service
        player_id = request.path_params["player_id"]
        ledger_after = request.query_params.get("ledger_after") or None
        history_after = request.query_params.get("history_after") or None
        try:
            check_identifier("player id", player_id)
            profile = await service.profile(player_id)
            progress = await service.progress(player_id)
            balance = await service.economy.balance(player_id)
            tier = await service.economy.tier(player_id)
            ledger = await service.economy.ledger(player_id, ledger_after, PAGE)
            history = await service.history(player_id, history_after, PAGE)
            why_not_yet = await self._why_not_yet(player_id, progress)
        except QuestlineError as refused:
            return self.render(
                request,
                "find_player.html",
                session,
                player_id=player_id,
                error=str(refused),
                status_code=400,
            )
        return self.render(
            request,
            "player.html",
            session,
            player_id=player_id,
            profile=profile,
            progress=progress,
            balance=balance,
            tier=tier,
            ledger=ledger,
            ledger_after=ledger_after,
            history=history,
            history_after=history_after,
            page_size=PAGE,
            why_not_yet=why_not_yet,
        )

    async def _why_not_yet(
        self, player_id: str, progress: PlayerProgress
    ) -> dict[str, Explanation]:
        """`explain` (as Query.explain answers it) for each challenge, milestone
        and streak the player has not unlocked yet, by `kind:id`."""
        targets = [f"challenge:{item.id}" for item in progress.challenges]
        targets += [f"milestone:{item.id}" for item in progress.milestones if item.next_tier]
        targets += [f"streak:{item.id}" for item in progress.streaks if item.streak.milestones]
        found = {}
        for target in targets:
            explanation = await self.service.designer.explain(player_id, target)
            if not explanation.unlocked:
                found[target] = explanation
        return found

    async def feed(self, request: Request, session: Session) -> Response:
        return self.render(request, "feed.html", session)

    async def program(self, request: Request, session: Session) -> Response:
        service = self.service
        program = service.program
        sources = await to_thread.run_sync(
            read_sources, service.settings.seed_path, program.version
        )
        context: dict[str, Any] = {
            "sources": sources,
            "summary": summary(service.settings.seed_path, program),
            "checked": None,
            "candidate_name": "challenges.yaml",
            "candidate_text": "",
            "alone": False,
            "error": None,
            "simulated": None,
        }
        status = 200
        if request.method == "POST":
            form = await request.form(max_files=20, max_fields=50, max_part_size=MAX_CANDIDATE)
            name = str(form.get("name", "")).strip() or "program.yaml"
            text = str(form.get("text", ""))
            alone = form.get("alone") is not None
            context.update(candidate_name=name, candidate_text=text, alone=alone)
            candidates = []
            if text.strip():
                candidates.append(Candidate(name, text))
            for upload in form.getlist("files"):
                if isinstance(upload, UploadFile) and upload.filename:
                    content = await upload.read()
                    try:
                        decoded = content.decode("utf-8")
                    except UnicodeDecodeError:
                        context["error"] = f"{upload.filename} is not UTF-8 text"
                        break
                    candidates.append(Candidate(Path(upload.filename).name, decoded))
            problems = [p for c in candidates if (p := check_file_name(c.name)) is not None]
            if context["error"] is None and problems:
                context["error"] = problems[0]
            if context["error"] is None and not candidates:
                context["error"] = "Paste a seed file or choose files to check."
            if context["error"] is None:
                base = None if alone else service.settings.seed_path
                checked = await to_thread.run_sync(check_candidate, candidates, base)
                context["checked"] = checked
                if checked.program is not None and not alone:
                    context["simulated"] = await self._simulated(candidates)
            else:
                status = 400
        return self.render(request, "program.html", session, status_code=status, **context)

    async def _simulated(self, candidates: list[Candidate]) -> Simulated | str:
        """The candidate compared with the program in use on the journal, as
        Query.simulateProgram answers it (same window, same event limit); or
        why it could not be."""
        try:
            return await self.service.designer.simulate(
                [(candidate.name, candidate.text) for candidate in candidates], None, None
            )
        except QuestlineError as refused:
            return str(refused)


def _local(target: str | None) -> str:
    """Where to go after signing in: a console path of this server, never elsewhere."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console/"


def _total(counter: Counter) -> float:
    """A Prometheus counter's value, summed over its labels."""
    return sum(
        sample.value
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def local_days(starts_at: datetime, ends_at: datetime, timezone: tzinfo) -> str:
    """A period [starts_at, ends_at) as the local dates it covers, first and last."""
    first = starts_at.astimezone(timezone).date()
    last = (ends_at.astimezone(timezone) - timedelta(microseconds=1)).date()
    return str(first) if first == last else f"{first} to {last}"
