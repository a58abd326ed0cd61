"""Schemathesis fuzzes the QR phone API from its own OpenAPI description on a live provider.

Every generated request must get an answer the description documents (status code, content
type, body schema, headers), and never a 5xx. Bounded by ``--max-examples`` to stay quick.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Flow, LiveProvider
from tests.qrlogin.conftest import Desktop
from tests.qrlogin.test_api import _token

ST = shutil.which("st") or str(Path(sys.executable).parent / "st")


@pytest.mark.parametrize("pinned", [False, True], ids=["any-id", "live-code"])
def test_the_qr_api_answers_as_its_openapi_description_says(
    live_provider: LiveProvider, make_client: Any, make_user: Any, tmp_path: Path, pinned: bool
) -> None:
    """With ``live-code`` every call targets one real pending code, so the fuzzer walks
    through scan, approve and deny on it instead of only meeting 404s."""
    if not Path(ST).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    alice = make_user("alice")
    erp = make_client("ERP")
    mobile = make_client("Company app", ["com.example.app:/callback"], public=True,
                         scope="openid profile qr.approve", first_party=True)
    token = _token(live_provider.app, mobile, "openid qr.approve")
    config = tmp_path / "schemathesis.toml"
    config.write_text("")
    if pinned:
        code = Desktop(live_provider.app.test_client(),
                       Flow(live_provider.app.test_client(), erp)).start()
        qr_id = code["id"]
        config.write_text(f'[parameters]\n"path.id" = "{qr_id}"\n')
    assert alice.username == "alice"
    # The per-user approval limit would answer most fuzzed approvals with 429 (documented)
    # and leave the logic behind them untested.
    live_provider.app.config["RATE_LIMIT_QR_APPROVE_USER"] = "100000/60"
    result = subprocess.run(
        [ST, "--config-file", str(config), "run", f"{live_provider.url}/api/qr/openapi.json",
         "--url", live_provider.url, "-H", f"Authorization: Bearer {token}", "--checks", "all",
         "--max-examples", "40", "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )
    live_provider.app.config["RATE_LIMIT_QR_APPROVE_USER"] = "10/300"
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
