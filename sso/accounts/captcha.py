"""A picture challenge drawn by the provider itself (no third-party service).

The answer lives in Redis under a random id for a few minutes and is taken with ``GETDEL``, so
each picture answers once. Characters that look alike (0/O, 1/I/L) are left out, and each is
rotated and placed unevenly over noise lines, which stops naive OCR without troubling people.
If Redis is unreachable no challenge can be kept, so none is asked (and the outage is logged).
"""

from __future__ import annotations

import io
import logging
import secrets

import redis
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..extensions import get_redis
from ..security import same

log = logging.getLogger(__name__)

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 5
TTL = 300
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


def verify(challenge_id: str | None, answer: str | None) -> bool:
    """Check and use up the challenge; a wrong answer uses it up as well."""
    if not challenge_id or not answer or len(challenge_id) > 64:
        return False
    try:
        expected = get_redis().client.getdel(_key(challenge_id))
    except redis.RedisError as exc:
        log.warning("captcha check skipped, Redis unavailable: %s", exc)
        return True
    if expected is None:
        return False
    typed = answer.strip().upper().replace(" ", "")
    return same(typed, expected.decode())


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
