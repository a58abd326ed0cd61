"""The stack floor: a bare Flask route under the same server command as the provider.

(``sso.serving.command`` with ``bench.floor:app``); what no endpoint of the provider can beat.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "world"}
