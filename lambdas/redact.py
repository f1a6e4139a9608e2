"""Secrets stay where they are: what a step reports names a secret but never carries its value.

A step's result goes into the execution history, the state machine's log group (execution data is logged),
the CLI's ``--json`` and the reports; its error message goes there too and into the function's log. So a value
read from AWS that may be a secret is redacted before it is put into a result or a message, here and only here:

- an environment property is secret when the plan marks it (``environments[].secret_properties``) or its name
  says so (``PASSWORD``, ``SECRET``, ``TOKEN``, ``API_KEY``, ``PRIVATE_KEY``, ``CREDENTIAL``, AWS access keys);
- credentials inside a URL (``postgres://user:password@host/db``) are masked in any value, whatever its name.

The values themselves are copied to the DR saved configuration unchanged: the DR environment needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "********"
# Names that say "secret" wherever they appear in a property name (DB_PASSWORD, STRIPE_SECRET_KEY, GITHUB_TOKEN).
SECRET_NAME = re.compile(
    r"PASS(WORD|WD|PHRASE)?(?![A-Z])|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL|SIGNING_?KEY"
    r"|CLIENT_?KEY|AUTH_?KEY|SESSION_?KEY|ENCRYPTION_?KEY|DSN$",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.IGNORECASE)


def is_secret(name: str, marked: Iterable[str] = ()) -> bool:
    """Whether the property ``name`` holds a secret: marked by the plan, or named like one."""
    return name in set(marked) or bool(SECRET_NAME.search(name or ""))


def value(text: Any) -> str:
    """``text`` with the credentials of any URL in it masked (``scheme://user:********@host``)."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", str(text))


def option_value(name: str, text: Any, marked: Iterable[str] = ()) -> str:
    """What may be shown of the value of option ``name``: nothing of a secret, a URL's credentials masked."""
    return MASK if is_secret(name, marked) else value(text)


def settings(options: list[dict[str, Any]], marked: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Option settings as they may be reported: every secret's ``Value`` masked."""
    marked = set(marked)
    return [{**o, "Value": option_value(str(o.get("OptionName", "")), o["Value"], marked)} if "Value" in o else o
            for o in options]
