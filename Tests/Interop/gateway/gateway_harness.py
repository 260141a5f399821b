"""Harness for the gateway interoperability tests: real gateway processes, a real Redis, and the
official Centrifugo clients (centrifuge-python for WebSocket, cent for the server API).

SB_GATEWAY_CMD   command that runs a gateway (default: .build/debug/switchboard gateway);
                 it is configured through SB_GATEWAY_PORT, SB_GATEWAY_INTERNAL_PORT (the
                 server API and /metrics), SB_GATEWAY_TOKEN_SECRET,
                 SB_GATEWAY_API_KEY, SB_REDIS_URL and SB_GATEWAY_CONFIG_JSON (the `gateway:` section).
SB_TEST_REDIS_URL Redis for the tests (default redis://127.0.0.1:6380/0); each test gets its own prefix.
"""

import json
import os
import shlex
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from switchboard_stack import stop_process

ROOT = Path(__file__).resolve().parents[3]
SECRET = "interop-secret"
API_KEY = "interop-api-key"

NAMESPACES = [
    {
        "name": "chat",
        "presence": True,
        "join_leave": True,
        "history_size": 100,
        "history_ttl": 300,
        "force_recovery": True,
        "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True,
        "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True,
    },
    {"name": "feed", "allow_subscribe_for_client": True},
    {"name": "secret", "presence": True},
]


def gateway_config(**overrides):
    config = {
        "token_secret": SECRET,
        "api_key": API_KEY,
        "client_queue_max_size": 262144,
        "namespaces": NAMESPACES,
    }
    config.update(overrides)
    return config


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_command():
    """The real `switchboard gateway` unless SB_GATEWAY_CMD names another command."""
    if os.environ.get("SB_GATEWAY_CMD"):
        return shlex.split(os.environ["SB_GATEWAY_CMD"])
    for build in ("debug", "release"):
        binary = ROOT / ".build" / build / "switchboard"
        if binary.exists():
            return [str(binary), "gateway"]
    raise RuntimeError("no switchboard binary: run `swift build` first or set SB_GATEWAY_CMD")


class Gateway:
    def __init__(self, port, internal_port, process):
        self.port = port
        self.internal_port = internal_port
        self.process = process
        self.ws_url = f"ws://127.0.0.1:{port}/connection/websocket"
        # cent talks to the internal listener: the public port answers 404 for /api/*.
        self.api_url = f"http://127.0.0.1:{internal_port}/api"

    def stop(self):
        stop_process(self.process, timeout=10)


