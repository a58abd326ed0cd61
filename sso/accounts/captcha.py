"""A picture challenge drawn by the provider itself (no third-party service).

The answer lives in Redis under a random id for a few minutes and is taken with ``GETDEL``, so
each picture answers once. Characters that look alike (0/O, 1/I/L) are left out, and each is
rotated and placed unevenly over noise lines, which stops naive OCR without troubling people.
If Redis is unreachable no challenge can be kept, so none is asked (and the outage is logged).

**The alternative that does not depend on sight** is the one large providers use when they
doubt a sign-in ("verify it's you"): a one-time code sent to the account's own email address
or mobile number, typed where the picture's characters go (:func:`send_code`). A screen reader
reads a mail or an SMS; no picture, sound or puzzle is involved (WCAG 2.1 SC 1.1.1; it is also
what SC 3.3.8 of WCAG 2.2 asks of an authentication step). It stops a password-guessing bot
better than the picture does, since the bot does not read the victim's mail. An audio
challenge was the other choice: it needs a speech synthesiser on every node in two languages,
fails deaf-blind users, and speech recognition solves it. The code is bound to the account it
was sent to, so a code from one's own mailbox does not open the gate for guessing another's.
"""

from __future__ import annotations

import io
import logging
import secrets
from typing import Any

import redis
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .. import onetimecode
from ..extensions import get_redis
from ..security import same

log = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 5
TTL = 300
#: The emailed or texted alternative: its lifetime, and wrong tries before it is void.
CODE_TTL = 600
CODE_TRIES = 5
CODE_PURPOSE = "captcha-alternative"
WIDTH, HEIGHT = 180, 64


def _key(challenge_id: str) -> str:
    return get_redis().key("captcha", challenge_id)


def create() -> str | None:
    """A new challenge id, or None when Redis cannot keep one."""
    challenge_id = secrets.token_urlsafe(16)
    answer = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    try:
        get_redis().client.set(_key(challenge_id), answer, ex=TTL)
    except redis.RedisError as exc:
        log.warning("captcha skipped, Redis unavailable: %s", exc)
        return None
    return challenge_id


def answer_of(challenge_id: str) -> str | None:
    """The expected answer (for drawing the picture), without using it up."""
    if not challenge_id or len(challenge_id) > 64:
        return None
    value = get_redis().client.get(_key(challenge_id))
    return value.decode() if value else None


def verify(challenge_id: str | None, answer: str | None, user_id: int | None = None) -> bool:
    """Check and use up the challenge; a wrong answer uses it up as well. The answer may
    instead be the code sent to ``user_id``'s own address (:func:`send_code`)."""
    if not answer:
        return False
    typed = answer.strip().upper().replace(" ", "")
    try:
        expected = (get_redis().client.getdel(_key(challenge_id))
                    if challenge_id and len(challenge_id) <= 64 else None)
        if expected is not None and same(typed, expected.decode()):
            return True
        return user_id is not None and _check_code(user_id, typed)
    except redis.RedisError as exc:
        log.warning("captcha check skipped, Redis unavailable: %s", exc)
        return True


def _code_key(user_id: int) -> str:
    return get_redis().key("captcha", "alternative", str(user_id))


def _check_code(user_id: int, typed: str) -> bool:
    """Whether ``typed`` is the code sent to the user: one of :data:`CODE_TRIES` tries, the
    code used up on success (:mod:`sso.onetimecode`). A picture's answer is no try."""
    if len(typed) != 6 or not typed.isdigit():
        return False
    checked = onetimecode.check(_code_key(user_id), onetimecode.mac(CODE_PURPOSE, user_id,
                                                                    code=typed), CODE_TRIES)
    return checked.outcome == onetimecode.OK


def send_code(user: Any) -> str | None:
    """Keep a new 6-digit code for ``user`` and return it (None when Redis cannot keep it);
    the caller sends it to the user's own address."""
    code = onetimecode.new_code()
    try:
        onetimecode.keep(_code_key(user.id), onetimecode.mac(CODE_PURPOSE, user.id, code=code),
                         CODE_TTL)
    except redis.RedisError as exc:
        log.warning("captcha code not kept, Redis unavailable: %s", exc)
        return None
    return code


def render(answer: str) -> bytes:
    """Draw ``answer`` as a distorted PNG."""
    rng = secrets.SystemRandom()
    image = Image.new("RGB", (WIDTH, HEIGHT), (246, 248, 251))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        draw.line([(rng.randint(0, WIDTH), rng.randint(0, HEIGHT)),
                   (rng.randint(0, WIDTH), rng.randint(0, HEIGHT))],
                  fill=(rng.randint(120, 200), rng.randint(120, 200), rng.randint(120, 200)),
                  width=2)
    font = ImageFont.load_default(size=38)
    step = (WIDTH - 20) // len(answer)
    for index, char in enumerate(answer):
        glyph = Image.new("RGBA", (48, 56), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((8, 2), char, font=font,
                                   fill=(rng.randint(10, 90), rng.randint(30, 90),
                                         rng.randint(90, 160), 255))
        glyph = glyph.rotate(rng.uniform(-28, 28), resample=Image.Resampling.BICUBIC,
                             expand=False)
        image.paste(glyph, (10 + index * step + rng.randint(-3, 3), rng.randint(0, 10)), glyph)
    for _ in range(180):
        draw.point((rng.randint(0, WIDTH - 1), rng.randint(0, HEIGHT - 1)),
                   fill=(rng.randint(80, 200),) * 3)
    image = image.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
