"""Render a notification as a ``multipart/alternative`` email (text and HTML).

The templates are package data (``channels/templates/email.*``) filled with
:class:`string.Template`; every value going into the HTML one is escaped.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import secrets
from email.header import Header
from email.utils import formatdate, parseaddr
from importlib import resources
from string import Template

from channels._text import impact_colour, one_line, status_label
from channels.base import Message, Notification

_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9._\-+=]")


@functools.cache
def _template(name: str) -> Template:
    return Template(resources.files("channels").joinpath("templates", name).read_text("utf-8"))


def subject(notification: Notification) -> str:
    """``[<page>] <incident title> — <status>``, on one line (a newline would be header injection)."""
    return one_line(f"[{notification.page_id}] {notification.title} — {status_label(notification.status)}")


def message_id(delivery_id: str) -> str:
    """Stable across retries, so a receiving MTA or client can drop duplicates."""
    return f"<{_MSGID_UNSAFE.sub('_', delivery_id)}@notifyd>"


def render_text(message: Message) -> str:
    n = message.notification
    values = _common(n)
    values["message_block"] = f"\n{n.message}\n" if n.message else ""
    values["components_block"] = f"\nAffected components: {', '.join(n.components)}\n" if n.components else ""
    values["link"] = n.link or "-"
    if n.follow_url:
        values["link"] += f"\nFollow this incident: {n.follow_url}"
    values["unsubscribe_block"] = (
        f"\nUnsubscribe: {message.unsubscribe_url}\n" if message.unsubscribe_url else ""
    ) + (f"Manage subscription: {message.manage_url}\n" if message.manage_url else "")
    return _template("email.txt").substitute(values)


def render_html(message: Message) -> str:
    n = message.notification
    esc = html.escape
    values = {k: esc(v) for k, v in _common(n).items()}
    values["colour"] = impact_colour(n)
    values["message_html"] = (
        '<p style="margin:0 0 12px;white-space:pre-line">' + esc(n.message) + "</p>" if n.message else ""
    )
    values["components_html"] = (
        '<p style="margin:0 0 4px"><strong>Affected components</strong></p><ul style="margin:0">'
        + "".join(f"<li>{esc(c)}</li>" for c in n.components)
        + "</ul>"
        if n.components
        else ""
    )
    values["link"] = esc(n.link or "#")
    follow = f' · <a href="{esc(n.follow_url or "")}" style="color:#0969da">Follow this incident</a>'
    values["follow_html"] = follow if n.follow_url else ""
    values["unsubscribe_html"] = (
        '<p style="margin:8px 0 0;font-size:12px"><a href="'
        + esc(message.unsubscribe_url)
        + '" style="color:#656d76">Unsubscribe</a></p>'
        if message.unsubscribe_url
        else ""
    ) + (
        '<p style="margin:4px 0 0;font-size:12px"><a href="'
        + esc(message.manage_url)
        + '" style="color:#656d76">Manage subscription</a></p>'
        if message.manage_url
        else ""
    )
    return _template("email.html").substitute(values)


def _common(n: Notification) -> dict[str, str]:
    return {
        "title": n.title,
        "status": status_label(n.status),
        "impact": n.impact,
        "page_id": n.page_id,
        "event_id": n.event_id,
        "occurred_at": n.occurred_at,
    }


def _pick(message: Message, part: str) -> str | None:
    """The caller's rendering of ``part`` (a page template), when it gave one."""
    rendered = message.rendered
    return getattr(rendered, part) if rendered is not None else None


def envelope_sender(sender: str) -> str:
    """The bare address of a ``From`` value such as ``Status <status@example.com>``."""
    return parseaddr(sender)[1] or sender


def _header(name: str, value: str) -> bytes:
    value = one_line(value)
    if value.isascii() and len(value) < 900:
        return f"{name}: {value}\r\n".encode("ascii")
    # RFC 2047 encoded words, folded, for anything non-ASCII (the subject's em dash among them).
    encoded = Header(value, "utf-8", header_name=name, maxlinelen=76).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _part(content_type: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    ).encode("ascii") + body


def build_email(message: Message, sender: str) -> bytes:
    """The full MIME message (``multipart/alternative``, text then HTML) for one recipient.

    Written out directly rather than through :class:`email.message.EmailMessage`,
    which costs over a millisecond per message to build and flatten: with a
    pooled connection that was most of the time spent per mail. Raises
    ``ValueError`` on an address that cannot go into a header.
    """
    target = message.target
    if any(c in target for c in "\r\n\0<>,") or "@" not in target or target != target.strip():
        raise ValueError("not an email address")
    boundary = "=_notifyd_" + secrets.token_hex(12)
    out = [
        _header("From", sender),
        f"To: {target}\r\n".encode(),  # UTF-8 only with SMTPUTF8, which the adapter then asks for
        _header("Subject", _pick(message, "subject") or subject(message.notification)),
        _header("Date", formatdate(localtime=False, usegmt=True)),
        _header("Message-ID", message_id(message.delivery_id)),
        b"Auto-Submitted: auto-generated\r\n",
    ]
    if message.unsubscribe_url:
        # RFC 8058 one-click unsubscribe; the URL must be https in production, the pipeline chooses it.
        out.append(_header("List-Unsubscribe", f"<{one_line(message.unsubscribe_url)}>"))
        out.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    out.append(
        f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
    )
    delimiter = f"--{boundary}\r\n".encode()
    out += [
        delimiter,
        _part("text/plain", _pick(message, "text") or render_text(message)),
        delimiter,
        _part("text/html", _pick(message, "html") or render_html(message)),
    ]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)
