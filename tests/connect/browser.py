"""The browser connect's end-to-end tests in a real headless Chromium (`tests.browser`),
and `deneva connect` run as the operator runs it (a subprocess printing the link, then
waiting)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

import attrs
import trio

from tests.browser import chromium, require_chromium

__all__ = ["BrowserVisit", "CliRun", "connect_cli", "require_chromium", "visit"]


@attrs.frozen
class BrowserVisit:
    title: str  # the final page's <h1>
    text: str  # the final page's text
    pages: tuple[str, ...]  # the URL of every page shown, in order


def _visit(url: str, pick: Sequence[str], decision: str) -> BrowserVisit:
    with chromium() as browser:
        page = browser.new_page()
        shown: list[str] = []
        page.goto(url)
        shown.append(page.url)
        if page.locator(f"#{decision}").count():  # the platform's consent page
            with page.expect_navigation():
                page.click(f"#{decision}")
            shown.append(page.url)
        if page.locator("#connect").count():  # deneva's account pick
            for account in pick:
                page.check(f"#account-{account}")
            with page.expect_navigation():
                page.click("#connect")
            shown.append(page.url)
        return BrowserVisit(page.inner_text("h1"), page.inner_text("body"), tuple(shown))


async def visit(url: str, pick: Sequence[str] = (), decision: str = "allow") -> BrowserVisit:
    """Open `url` in Chromium, press the consent page's Allow (or `decision`), tick `pick`
    on deneva's account page and connect. Playwright's sync API runs in a thread of its own."""
    return await trio.to_thread.run_sync(_visit, url, tuple(pick), decision)


@attrs.frozen
class CliRun:
    returncode: int
    stdout: str
    stderr: str


async def connect_cli(
    env: dict[str, str], platform: str, tenant: str, accounts: Sequence[str], pick: Sequence[str] = ()
) -> tuple[CliRun, BrowserVisit]:
    """`deneva connect PLATFORM --tenant TENANT [--account ...]`: read the link it prints,
    complete it in Chromium, and wait for the command to say how it ended."""
    argv = [sys.executable, "-m", "deneva", "connect", platform, "--tenant", tenant]
    for account in accounts:
        argv += ["--account", account]
    process = await trio.lowlevel.open_process(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}
    )
    assert process.stdout is not None and process.stderr is not None
    out = b""
    with trio.fail_after(60):
        while b"/connect/" not in out or not out.endswith(b"\n"):
            chunk = await process.stdout.receive_some()
            if not chunk:
                err = await process.stderr.receive_some()
                raise AssertionError(f"deneva connect printed no link: {out!r} {err!r}")
            out += chunk
    url = next(line for line in out.decode().splitlines() if "/connect/" in line).strip()
    seen = await visit(url, pick)
    err = b""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def drain(stream: trio.abc.ReceiveStream, into: list[bytes]) -> None:
                while chunk := await stream.receive_some():
                    into.append(bytes(chunk))

            rest: list[bytes] = []
            errs: list[bytes] = []
            nursery.start_soon(drain, process.stdout, rest)
            nursery.start_soon(drain, process.stderr, errs)
        await process.wait()
    out += b"".join(rest)
    err += b"".join(errs)
    assert process.returncode is not None
    return CliRun(process.returncode, out.decode(), err.decode()), seen
