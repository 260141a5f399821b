"""Schemathesis (PyPI) against docs/gateway-openapi.yaml on a live `switchboard gateway`: the
public port's HTTP routes (the unidirectional streams' GET, POST and CORS preflight, /healthz)
fuzzed through a client the project did not write. The bar: no 5xx, and every answer's status,
headers, content type and body as the document says. Exceptions are listed with their reasons in
schemathesis.toml beside this file.

The fuzzer holds no valid token, so a stream never starts (an open stream would never end):
what is under test is every way a connect can be refused, and the gateway's own parsing of the
request head, its query and its body. The streams themselves have their own tests
(Tests/GatewayIntegrationTests, Tests/Browser).

SB_SCHEMATHESIS_EXAMPLES  examples per operation (default 10)
SB_SCHEMATHESIS_SEED      the seed (default 1; `random` for a fresh one)
"""

import os
import pathlib
import subprocess
import sys

from gateway_harness import ROOT, gateway_config

HERE = pathlib.Path(__file__).resolve().parent
SCHEMATHESIS = pathlib.Path(sys.executable).parent / "schemathesis"


def test_every_public_route(start_gateway):
    gateway = start_gateway(gateway_config(allowed_origins=["https://site.example"]))
    seed = os.environ.get("SB_SCHEMATHESIS_SEED", "1")
    command = [str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"), "run",
               str(ROOT / "docs" / "gateway-openapi.yaml"), "--url", f"http://127.0.0.1:{gateway.port}",
               "--max-examples", os.environ.get("SB_SCHEMATHESIS_EXAMPLES", "10"),
               "--phases", "examples,coverage,fuzzing", "--request-timeout", "10", "--no-color",
               "--workers", "1"]
    if seed != "random":
        command += ["--seed", seed]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
